"""ROS 2 nodes, hardware backends, cameras, teleop and safety (see the WidowX issue)."""
