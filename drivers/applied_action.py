"""The normalized 7-D action a driver actually applied: the commanded end-effector pose's move, after the
controller's own clipping (workspace box, tilt) and the safety filter.

    before = pose_of(controller)                   # (target_pos, target_quat) before the command
    ... controller.step(action); safety.filter(...)
    applied = applied_action(before, pose_of(controller), gripper, scale)

dx, dy, dz are the target position's move divided by ``scale.position`` (m per unit); droll, dpitch, dyaw
are the rotation from the old to the new target orientation, about the fixed base axes (extrinsic
x-y-z, the convention ``DeltaPoseController`` applies; or a rotation vector with ``convention="rotvec"``,
the Franka's), divided by ``scale.rotation`` (rad per unit); the
gripper entry is absolute (-1 closed, 1 open). Quaternions are (w, x, y, z).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_rl.sim.rotations import quat_conjugate, quat_mul, world_rotvec

ROTATION_CONVENTIONS = ("rpy", "rotvec")


@dataclass(frozen=True)
class ActionScale:
    position: float   # m of end-effector motion per unit of dx, dy, dz
    rotation: float   # rad per unit of droll, dpitch, dyaw
    # how the rotation entries read: "rpy" (extrinsic x-y-z angles, Bridge's WidowX) or "rotvec" (a rotation
    # vector about the base axes applied on the left, the Franka twin's robot_rl.sim.franka.targets)
    convention: str = "rpy"

    def __post_init__(self):
        if not (np.isfinite(self.position) and self.position > 0 and np.isfinite(self.rotation) and self.rotation > 0):
            raise ValueError(f"ee_action_scale: expected positive metres and radians per unit, found "
                             f"({self.position}, {self.rotation})")
        if self.convention not in ROTATION_CONVENTIONS:
            raise ValueError(f"ee_action_scale: rotation convention {self.convention!r} is unknown: expected one "
                             f"of {', '.join(ROTATION_CONVENTIONS)}")


def pose_of(controller) -> tuple[np.ndarray, np.ndarray]:
    """A copy of the controller's commanded end-effector pose (position, quaternion w-x-y-z)."""
    return np.array(controller.target_pos, dtype=float), np.array(controller.target_quat, dtype=float)


def applied_action(before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray],
                   gripper: float, scale: ActionScale) -> np.ndarray:
    """The normalized action that moves the commanded pose ``before`` to ``after``, with ``gripper``."""
    delta_pos = (after[0] - before[0]) / scale.position
    if scale.convention == "rotvec":
        rotation = world_rotvec(after[1], before[1]) / scale.rotation
    else:
        rotation = extrinsic_rpy(quat_mul(after[1], quat_conjugate(before[1]))) / scale.rotation
    return np.concatenate([delta_pos, rotation, [float(gripper)]])


def extrinsic_rpy(quat: np.ndarray) -> np.ndarray:
    """(roll, pitch, yaw) with R = Rz(yaw) Ry(pitch) Rx(roll), the inverse of mju_euler2Quat(.., "XYZ")."""
    w, x, y, z = np.asarray(quat, dtype=float) / np.linalg.norm(quat)
    r20 = 2 * (x * z - w * y)
    roll = np.arctan2(2 * (y * z + w * x), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(-r20, -1.0, 1.0))
    yaw = np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z))
    return np.array([roll, pitch, yaw])
