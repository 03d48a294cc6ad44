"""The WidowX 250 S on ROS 2: its backends (the MuJoCo twin in-process, Dynamixel servos)."""
