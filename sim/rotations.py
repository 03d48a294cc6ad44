"""Quaternion helpers (w, x, y, z) for every twin, on top of MuJoCo's own C routines (fast for single
4-vectors)."""
from __future__ import annotations

import mujoco
import numpy as np


def quat_exp(rotvec: np.ndarray) -> np.ndarray:
    """The unit quaternion of a rotation vector (axis * angle)."""
    quat = np.array([1.0, 0.0, 0.0, 0.0])
    mujoco.mju_quatIntegrate(quat, np.asarray(rotvec, dtype=np.float64), 1.0)
    return quat


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(4)
    mujoco.mju_mulQuat(out, a, b)
    return out


def quat_conjugate(quat: np.ndarray) -> np.ndarray:
    """The inverse rotation of a unit quaternion."""
    out = np.empty(4)
    mujoco.mju_negQuat(out, np.asarray(quat, dtype=np.float64))
    return out


def local_rotvec(quat: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rotation vector r, in ref's own frame, with quat = ref * exp(r)."""
    out = np.empty(3)
    mujoco.mju_subQuat(out, quat, ref)
    return out


def world_rotvec(quat: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rotation vector r, in the world frame, with quat = exp(r) * ref."""
    out = np.empty(3)
    mujoco.mju_rotVecQuat(out, local_rotvec(quat, ref), ref)
    return out


def yaw_quat(yaw: float) -> np.ndarray:
    """A rotation about the world z axis."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])

