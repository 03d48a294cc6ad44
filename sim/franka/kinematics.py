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


class PandaKinematics:
    """Forward and inverse kinematics of the TCP on the Panda alone (panda.xml, no scene), with its own
    MjData: for drivers, which have joint readings and no twin."""

    def __init__(self):
        from robot_rl.sim.twin import asset_path

        self.model = mujoco.MjModel.from_xml_path(asset_path("franka/panda.xml"))
        self.data = mujoco.MjData(self.model)
        self._qadr = np.array([self.model.joint(name).qposadr[0] for name in JOINT_NAMES])
        self._dadr = np.array([self.model.joint(name).dofadr[0] for name in JOINT_NAMES])
        self._site = self.model.site("tcp").id
        self._jacp, self._jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))

    def forward(self, q) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (m) and quaternion (w, x, y, z) at the 7 arm joints ``q``."""
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._site])
        return self.data.site_xpos[self._site].copy(), quat

    def twist(self, q, dq) -> tuple[np.ndarray, np.ndarray]:
        """TCP linear (m/s) and angular (rad/s) velocity, base frame, at joints ``q`` moving at ``dq``."""
        self.forward(q)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self._site)
        dq = np.asarray(dq, dtype=float)
        return self._jacp[:, self._dadr] @ dq, self._jacr[:, self._dadr] @ dq

    def inverse(self, pos, quat, q_start) -> np.ndarray:
        """Joints that put the TCP at ``pos`` / ``quat``, starting from (and pulled toward) ``q_start``."""
        return solve_ik(self.model, self.data, pos, quat, q_start)
