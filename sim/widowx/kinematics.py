"""Forward and inverse kinematics of the WidowX 250 S on its MuJoCo model.

    kin = WidowXKinematics()
    pos, quat = kin.forward(q)
    q, err = kin.solve(target_pos, target_quat, q_init)   # err: position error in metres

The solver is damped least squares on the "ee" site Jacobian (mj_jacSite) of a private MjData, so it
runs without any env and never touches a simulation's state. Orientation error counts
``rot_weight`` metres per radian; joints are clipped to their limits after every iteration. It runs
every control step of the twin, warm-started from the last solution; the arithmetic of each
iteration is one compiled call (dls.py).
"""
from __future__ import annotations

import math

import mujoco
import numpy as np

from robot_rl.sim.twin import asset_path
from robot_rl.sim.widowx.dls import dls_step, pose_error
from robot_rl.sim.widowx.robot import ARM_JOINTS, HOME_QPOS

ROBOT_XML = "widowx/wx250s.xml"
N_ARM = len(ARM_JOINTS)


class WidowXKinematics:
    def __init__(self, site: str = "ee", rot_weight: float = 0.25, damping: float = 1e-2,
                 max_iters: int = 30, pos_tol: float = 2e-4, rot_tol: float = 2e-3, max_step: float = 0.4):
        self.model = mujoco.MjModel.from_xml_path(asset_path(ROBOT_XML))
        self.data = mujoco.MjData(self.model)
        self.site = self.model.site(site).id
        joints = [self.model.joint(name) for name in ARM_JOINTS]
        first_q, first_v = joints[0].qposadr[0], joints[0].dofadr[0]
        # The arm's joints come first and in order in the model: plain slices, no fancy indexing.
        assert [j.qposadr[0] for j in joints] == list(range(first_q, first_q + N_ARM))
        assert [j.dofadr[0] for j in joints] == list(range(first_v, first_v + N_ARM))
        self._qs, self._v0 = slice(first_q, first_q + N_ARM), int(first_v)
        self.lower = np.array([j.range[0] for j in joints])
        self.upper = np.array([j.range[1] for j in joints])
        self.rot_weight = float(rot_weight)
        self.damping = float(damping)
        self._damping2 = self.damping ** 2
        self.max_iters = int(max_iters)
        self.pos_tol, self.rot_tol, self.max_step = float(pos_tol), float(rot_tol), float(max_step)
        self.last_rot_err = 0.0
        self.last_iters = 0
        self._jac = np.zeros((6, self.model.nv))
        self._quat, self._err = np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(6)
        self._compile_kernels()

    def _compile_kernels(self) -> None:
        """One iteration toward a point 1 cm off home, so that numba compiles dls.py's kernels (or loads
        them from its cache) now: compiled on the first command instead, they stall the twin's process (its
        cameras, its task node) for about a second into the first episode."""
        pos, quat = self.forward(HOME_QPOS)
        self.solve(pos + 0.01, quat, max_iters=1)
        self.last_rot_err, self.last_iters = 0.0, 0

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (m) and quaternion (w, x, y, z) in the base frame for arm joints q."""
        self.data.qpos[self._qs] = self._check_q(q, "q")
        mujoco.mj_kinematics(self.model, self.data)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self.site])
        return self.data.site_xpos[self.site].copy(), quat

    def solve(self, target_pos: np.ndarray, target_quat: np.ndarray | None = None,
              q_init: np.ndarray | None = None, max_iters: int | None = None) -> tuple[np.ndarray, float]:
        """Arm joints that put the end effector at target_pos (and target_quat, w-x-y-z, if given).

        Starts from q_init (default: the home pose); returns the joints and the remaining position
        error in metres. The orientation error (rad) is left in ``last_rot_err``.
        """
        target_pos = np.asarray(target_pos, dtype=float)
        if target_pos.shape != (3,) or not np.all(np.isfinite(target_pos)):
            raise ValueError(f"target_pos: expected 3 finite numbers (metres), found {target_pos}")
        with_rot = target_quat is not None
        if with_rot:
            target_quat = np.asarray(target_quat, dtype=float)
            norm = float(np.linalg.norm(target_quat)) if target_quat.shape == (4,) else 0.0
            if not math.isfinite(norm) or norm < 1e-9:
                raise ValueError(f"target_quat: expected a non-zero quaternion (w, x, y, z), found {target_quat}")
            target_quat = target_quat / norm
        q = HOME_QPOS.copy() if q_init is None else self._check_q(q_init, "q_init").copy()
        return self.solve_unchecked(target_pos, target_quat, q, self.max_iters if max_iters is None else max_iters)

    def solve_unchecked(self, target_pos: np.ndarray, target_quat: np.ndarray | None, q: np.ndarray,
                        max_iters: int) -> tuple[np.ndarray, float]:
        """solve() for callers that already hold float64 arrays of the right shapes and a unit
        quaternion (the twin's controller, every step); q is updated in place and returned."""
        np.clip(q, self.lower, self.upper, out=q)
        with_rot = target_quat is not None
        model, data, site, w = self.model, self.data, self.site, self.rot_weight
        rows = 6 if with_rot else 3
        quat = target_quat if with_rot else self._quat
        site_pos, site_mat = data.site_xpos[site], data.site_xmat[site]
        jacp, jacr = self._jac[:3], self._jac[3:]
        it = 0
        while True:
            data.qpos[self._qs] = q
            mujoco.mj_kinematics(model, data)
            pos_err, rot_err = pose_error(target_pos, quat, with_rot, site_pos, site_mat, w, self._err)
            if (pos_err <= self.pos_tol and rot_err <= self.rot_tol) or it >= max_iters:
                break
            mujoco.mj_comPos(model, data)
            mujoco.mj_jacSite(model, data, jacp, jacr, site)
            dls_step(self._jac, self._v0, rows, w, self._err, self._damping2, self.max_step, q,
                     self.lower, self.upper)
            it += 1
        self.last_rot_err, self.last_iters = rot_err, it
        return q, pos_err

    def _check_q(self, q, name: str) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape != (N_ARM,) or not np.all(np.isfinite(q)):
            raise ValueError(f"{name}: expected {N_ARM} finite arm joint angles (rad) in the order "
                             f"{ARM_JOINTS}, found {q}")
        return q
