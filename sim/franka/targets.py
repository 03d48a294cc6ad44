"""The Franka's 7-D action as a Cartesian target, without a MuJoCo model: shared by the twin's impedance
controller (robot_rl.sim.franka.twin) and the real arm's driver (robot_rl.drivers.franka), so both scale,
box and tilt-limit a command the same way.

    pos, quat = step_target(pos, quat, action)   # the last target moved by a normalized action, clipped
    width = gripper_width(action[6])             # -1 closed, +1 open (GRIPPER_MAX_WIDTH)
"""
from __future__ import annotations

import math

import numpy as np

from robot_rl.sim.franka import panda
from robot_rl.sim.rotations import local_rotvec, quat_exp, quat_mul

_ORIENTATION_LIMITS = tuple(panda.ORIENTATION_LIMITS.tolist())  # floats: cheaper to compare per step


def clip_target(pos: np.ndarray, quat: np.ndarray, low: np.ndarray = panda.SAFETY_BOX_LOW,
                high: np.ndarray = panda.SAFETY_BOX_HIGH) -> tuple[np.ndarray, np.ndarray]:
    """Clip a Cartesian target to a safety box and the orientation limits about the nominal pose."""
    pos = np.minimum(np.maximum(pos, low), high)
    quat = quat / math.sqrt(quat @ quat)
    tilt = local_rotvec(quat, panda.NOMINAL_QUAT)
    if any(abs(angle) > limit for angle, limit in zip(tilt.tolist(), _ORIENTATION_LIMITS)):
        tilt = np.minimum(np.maximum(tilt, -panda.ORIENTATION_LIMITS), panda.ORIENTATION_LIMITS)
        quat = quat_mul(panda.NOMINAL_QUAT, quat_exp(tilt))
    return pos, quat


def step_target(pos: np.ndarray, quat: np.ndarray, action: np.ndarray, low: np.ndarray = panda.SAFETY_BOX_LOW,
                high: np.ndarray = panda.SAFETY_BOX_HIGH) -> tuple[np.ndarray, np.ndarray]:
    """The target after one normalized action: POS_STEP m and ROT_STEP rad (base frame, applied on the left)
    per unit, then clipped to the box and the orientation limits."""
    action = np.asarray(action, dtype=np.float64)
    turn = quat_exp(action[3:6] * panda.ROT_STEP)
    return clip_target(pos + action[:3] * panda.POS_STEP, quat_mul(turn, quat), low, high)


def gripper_width(command: float) -> float:
    """The finger-pad distance (m) a gripper command in [-1, 1] asks for."""
    return 0.5 * panda.GRIPPER_MAX_WIDTH * (float(command) + 1.0)
