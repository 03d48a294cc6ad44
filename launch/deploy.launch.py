"""ros2 launch robot_rl deploy.launch.py robot:=widowx backend:=dynamixel checkpoint:=/runs/train/<run> \
       camera_devices:=front=/dev/video0
The robot, its cameras and the policy node (robot_rl/launch/graphs.py: deploy)."""
from robot_rl.launch.ros_launch import launch_description


def generate_launch_description():
    return launch_description("deploy")
