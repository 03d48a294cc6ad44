"""ros2 launch robot_rl teleop_collect.launch.py robot:=widowx backend:=twin teleop:=scripted \
       out:=/data/wx.zarr episodes:=5
The robot, its cameras, a teleop device and the recorder (robot_rl/launch/graphs.py: teleop_collect)."""
from robot_rl.launch.ros_launch import launch_description


def generate_launch_description():
    return launch_description("teleop_collect")
