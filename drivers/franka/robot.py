"""The Franka Panda / FR3 in the robot layer (robot_rl.drivers.robot): its backends (the MuJoCo twin, and
franky, libfranka's client, on the arm or on its protocol twin robot_rl.sim.franka.server), safety limits,
home pose, end-effector controller and proprioception."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robot_rl.drivers.proprio import ordered_positions
from robot_rl.drivers.robot import TWIN, RobotDefinition


def make_backend(backend: str, *, port: str, task: str | None = None, seed: int = 0, dynamics=None,
                 command_rate: float = 10.0, image_size: tuple[int, int] = (128, 128)):
    if backend == TWIN:
        from robot_rl.drivers.franka.twin_backend import FrankaTwinBackend

        return FrankaTwinBackend(task=task or DEFINITION.default_task, seed=seed, dynamics=dynamics, image_size=image_size,
                                 control_period=1.0 / command_rate)
    from robot_rl.drivers.franka.franky_backend import FrankyBackend

    return FrankyBackend(host=port)


def driver_parts(command_rate: float) -> dict:
    """The CommandArbiter's keywords: safety limits at the command period, the "ready" pose with the gripper
    open, the twin's Cartesian target step as joint targets, and the twin's action scale (rotation vector)."""
    from robot_rl.drivers.franka.ee_controller import FrankaDeltaPoseController
    from robot_rl.drivers.safety import SafetyFilter, franka_limits
    from robot_rl.sim.franka import panda

    period = 1.0 / command_rate
    half_width = panda.GRIPPER_MAX_WIDTH / 2
    return {"safety": SafetyFilter(franka_limits(control_period=period), control_period=period),
            "home": np.append(panda.HOME_QPOS, half_width),
            "ee_controller": FrankaDeltaPoseController(),
            "opening_from_gripper": lambda finger: float(finger) / half_width,
            "ee_action_scale": (panda.POS_STEP, panda.ROT_STEP, "rotvec")}


class FrankaProprio:
    """The Franka twin's 21-D state from the driver's 8 joints (7 arm joints, one finger's slide in m) and,
    for the TCP twist, their velocities (zeros when a reading has none)."""

    def __init__(self):
        from robot_rl.drivers.franka.franky_backend import JOINT_NAMES
        from robot_rl.sim.franka import panda
        from robot_rl.sim.franka.kinematics import PandaKinematics

        self.joint_names = JOINT_NAMES
        self.nominal = panda.NOMINAL_QUAT
        self.kinematics = PandaKinematics()

    def __call__(self, names: Sequence[str], positions: Sequence[float],
                 velocities: Sequence[float] = ()) -> np.ndarray:
        q = ordered_positions(names, positions, self.joint_names)
        dq = ordered_positions(names, velocities, self.joint_names) if len(velocities) else np.zeros(len(q))
        pos, quat = self.kinematics.forward(q[:7])
        if quat @ self.nominal < 0:
            quat = -quat
        linear, angular = self.kinematics.twist(q[:7], dq[:7])
        return np.concatenate([q[:7], pos, quat, [2.0 * q[7]], linear, angular]).astype(np.float32)


DEFINITION = RobotDefinition(
    name="franka",
    process="robot_rl.drivers.franka.node",
    hardware_backends=("franky",),
    default_port="172.16.0.2",
    make_backend=make_backend,
    driver_parts=driver_parts,
    make_proprio=FrankaProprio,
    default_task="lift",
    extras={"franky": "hw"},
)
