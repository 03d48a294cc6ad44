"""The WidowX 250 S in the robot layer (robot_rl.drivers.robot): its backends, safety limits, home pose,
Bridge end-effector controller and proprioception, shared by the pure-Python Robot and the ROS driver
node (robot_rl.drivers.widowx.node)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robot_rl.drivers.proprio import ordered_positions
from robot_rl.drivers.robot import TWIN, RobotDefinition


def make_backend(backend: str, *, port: str, task: str | None = None, seed: int = 0, dynamics=None,
                 command_rate: float = 5.0, image_size: tuple[int, int] = (128, 128)):
    if backend == TWIN:
        from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend

        return WidowXTwinBackend(task=task or DEFINITION.default_task, seed=seed, dynamics=dynamics, image_size=image_size,
                                 control_period=1.0 / command_rate)
    from robot_rl.drivers.widowx.dynamixel_backend import WidowXDynamixelBackend

    return WidowXDynamixelBackend(port=port)


def driver_parts(command_rate: float) -> dict:
    """The CommandArbiter's keywords: safety limits, home pose (gripper open), the Bridge controller.

    The filter's control period is the *command* period, not the bus period: it sizes the largest move one
    command may ask for (a 50 Hz bus period would cap each 5 Hz command at a tenth of the allowed velocity)."""
    from robot_rl.drivers.safety import SafetyFilter, widowx_limits
    from robot_rl.sim.widowx import robot as wx
    from robot_rl.sim.widowx.control import DeltaPoseController

    period = 1.0 / command_rate
    return {"safety": SafetyFilter(widowx_limits(control_period=period), control_period=period),
            "home": np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1]),
            "ee_controller": DeltaPoseController(),
            "opening_from_gripper": lambda finger: float(wx.width_to_opening(2.0 * finger))}


class WidowXProprio:
    """The WidowX twin's 14-D state: 6 arm joints, gripper opening, end-effector position and quaternion
    (w >= 0), from the driver's 7 joints (the gripper as one finger's slide, m). The end-effector pose
    comes from ``WidowXKinematics.forward``, the twin's own model."""

    def __init__(self):
        from robot_rl.sim.widowx import robot as wx
        from robot_rl.sim.widowx.kinematics import WidowXKinematics

        self._wx = wx
        self.joint_names = wx.JOINT_NAMES
        self.kinematics = WidowXKinematics()

    def __call__(self, names: Sequence[str], positions: Sequence[float], velocities: Sequence[float] = ()) -> np.ndarray:
        """``velocities`` are not part of this state (the robot layer passes every robot's builder them)."""
        q = ordered_positions(names, positions, self.joint_names)
        pos, quat = self.kinematics.forward(q[:6])
        if quat[0] < 0:
            quat = -quat
        opening = self._wx.width_to_opening(2.0 * q[6])  # the fingers move together: width = 2 slides
        return np.concatenate([q[:6], [opening], pos, quat]).astype(np.float32)


DEFINITION = RobotDefinition(
    name="widowx",
    process="robot_rl.drivers.widowx.node",
    hardware_backends=("dynamixel",),
    default_port="/dev/ttyDXL",
    make_backend=make_backend,
    driver_parts=driver_parts,
    make_proprio=WidowXProprio,
    default_task="reach",
    extras={"dynamixel": "hw"},
)
