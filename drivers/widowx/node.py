"""The WidowX 250 S driver node: the twin or the Dynamixel servos behind robot_rl's DriverNode.

    python -m robot_rl.drivers.widowx.node --backend twin
    python -m robot_rl.drivers.widowx.node --backend dynamixel --port /dev/ttyDXL --rate 50

DDS stays on this machine unless asked otherwise: ROS_AUTOMATIC_DISCOVERY_RANGE defaults to LOCALHOST
here (export SUBNET to reach other machines). Torque starts off (call the enable_torque service, or
pass --enable-torque). Topics and services: see robot_rl.drivers.driver_node.

The safety filter's control_period is the *command* period (--command-rate, default the Bridge rate of
5 Hz = 0.2 s), not the bus period: it sizes max_step, the largest move one command may ask for, and
the move allowed to the first command after a hold. Passing the 50 Hz bus period would cap each 5 Hz
command at a tenth of the allowed joint velocity. The velocity limit (max_velocity x the time since the
last command) holds at any rate, including the node's own goal pursuit on every bus tick.
"""
from __future__ import annotations

import argparse
import os


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.drivers.widowx.node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("twin", "dynamixel"), default="twin")
    parser.add_argument("--port", default="/dev/ttyDXL", help="the U2D2's serial port (dynamixel backend)")
    parser.add_argument("--rate", type=float, default=50.0, help="bus rate in Hz: read, publish, write")
    parser.add_argument("--command-rate", type=float, default=5.0,
                        help="the rate commands arrive at, in Hz: sizes the safety filter's per-command step")
    parser.add_argument("--enable-torque", action="store_true", help="turn torque on at start")
    parser.add_argument("--name", default="widowx_driver", help="the node name")
    args, _ros_args = parser.parse_known_args(argv)
    for key in ("rate", "command_rate"):
        if not getattr(args, key) > 0:
            parser.error(f"--{key.replace('_', '-')}: expected a positive rate in Hz, found {getattr(args, key)}")
    return args


def make_backend(args: argparse.Namespace):
    if args.backend == "twin":
        from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend

        return WidowXTwinBackend()
    from robot_rl.drivers.widowx.dynamixel_backend import WidowXDynamixelBackend

    return WidowXDynamixelBackend(port=args.port)


def make_node(backend, args: argparse.Namespace):
    """A DriverNode for a connected WidowX backend: its limits, home pose and Bridge controller."""
    import numpy as np

    from robot_rl.drivers.driver_node import DriverNode
    from robot_rl.drivers.safety import SafetyFilter, widowx_limits
    from robot_rl.sim.widowx import robot as wx
    from robot_rl.sim.widowx.control import DeltaPoseController

    command_period = 1.0 / args.command_rate
    safety = SafetyFilter(widowx_limits(control_period=command_period), control_period=command_period)
    home = np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1])  # gripper open
    return DriverNode(backend, safety, home, ee_controller=DeltaPoseController(),
                      opening_from_gripper=lambda finger: float(wx.width_to_opening(2.0 * finger)),
                      rate_hz=args.rate, hardware_id=f"widowx_250s:{args.backend}:{args.port}",
                      node_name=args.name)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # before rclpy reads it
    import rclpy

    from robot_rl.drivers.backend import BackendFault

    backend = make_backend(args)
    try:
        backend.connect()
    except BackendFault as err:
        backend.close()
        raise SystemExit(f"widowx driver: {err}") from None
    rclpy.init()
    try:
        node = make_node(backend, args)
    except BaseException:
        backend.close()
        rclpy.try_shutdown()
        raise
    spin(node, args.enable_torque)


def spin(node, enable_torque: bool) -> None:
    """Spin until Ctrl-C or shutdown, then torque off and close the backend."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    if enable_torque:
        node.get_logger().info(node.enable_torque(True)[1])
    try:
        rclpy.spin(node)  # single-threaded: see robot_rl.drivers.driver_node
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown_backend()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
