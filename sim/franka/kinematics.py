"""Inverse kinematics of the Panda TCP on the MuJoCo model (damped least squares).

Used to place the arm at a sampled TCP pose at reset; a driver can use it to turn a Cartesian start
pose into the joint pose it sends the real arm.
"""
from __future__ import annotations

import mujoco
import numpy as np

from robot_rl.sim.franka.panda import HOME_QPOS, JOINT_LIMITS_HIGH, JOINT_LIMITS_LOW, JOINT_NAMES
from robot_rl.sim.rotations import world_rotvec


class IKError(ValueError):
    """The requested TCP pose is out of the arm's reach."""


def solve_ik(model: mujoco.MjModel, data: mujoco.MjData, pos, quat, q_start=HOME_QPOS,
             *, site: str = "tcp", tol: float = 1e-4, iterations: int = 200, damping: float = 1e-2,
             posture_gain: float = 0.05) -> np.ndarray:
    """Joint angles (7) that put ``site`` at ``pos`` with orientation ``quat`` (w, x, y, z).

    Writes the arm's qpos in ``data`` (pass a scratch MjData to keep a state). The null space is
    pulled toward ``q_start`` so the elbow stays where a Franka user expects it. Raises IKError when
    the pose is out of reach.
    """
    pos, quat = np.asarray(pos, dtype=np.float64), np.asarray(quat, dtype=np.float64)
    if pos.shape != (3,) or quat.shape != (4,):
        raise ValueError(f"solve_ik: expected pos (3,) and quat (4,), found {pos.shape} and {quat.shape}")
    qadr = np.array([model.joint(name).qposadr[0] for name in JOINT_NAMES])
    dadr = np.array([model.joint(name).dofadr[0] for name in JOINT_NAMES])
    site_id = model.site(site).id
    q = np.clip(np.asarray(q_start, dtype=np.float64), JOINT_LIMITS_LOW, JOINT_LIMITS_HIGH)
    jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    site_quat = np.empty(4)
    for _ in range(iterations):
        data.qpos[qadr] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        mujoco.mju_mat2Quat(site_quat, data.site_xmat[site_id])
        error = np.concatenate([pos - data.site_xpos[site_id], world_rotvec(quat, site_quat)])
        if np.linalg.norm(error) < tol:
            return q
        mujoco.mj_jacSite(model, data, jacp, jacr, site_id)
        jac = np.vstack([jacp[:, dadr], jacr[:, dadr]])
        jac_inv = jac.T @ np.linalg.inv(jac @ jac.T + damping**2 * np.eye(6))
        posture = posture_gain * (q_start - q)  # applied in the Jacobian's null space
        q = np.clip(q + jac_inv @ (error - jac @ posture) + posture, JOINT_LIMITS_LOW, JOINT_LIMITS_HIGH)
    raise IKError(f"solve_ik: no joint pose puts the TCP at {pos.round(3)} / {quat.round(3)} "
                  f"(error {np.linalg.norm(error):.2g} after {iterations} iterations): "
                  "keep targets inside the safety box")
