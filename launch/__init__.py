"""Node graphs shared by `robot-rl bringup` (plain processes) and the ROS 2 launch files."""
