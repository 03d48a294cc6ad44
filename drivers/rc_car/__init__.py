"""The RC car (F1TENTH-style): its VESC driver, safety core, robot definition and ROS 2 node."""
