"""robot_rl: a robotics learning stack (store, twins, learner, ROS 2 drivers)."""
