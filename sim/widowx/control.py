"""Bridge-style delta end-effector control: a normalized 7-D action moves a commanded pose target.

    controller = DeltaPoseController(WidowXKinematics())
    controller.reset(q_now)
    q_target, finger_target = controller.step(action)   # servo set-points

The position delta (action[:3] * MAX_DELTA_POS) and the rotation delta (action[3:6] * MAX_DELTA_ROT,
roll-pitch-yaw about the fixed base axes) apply to the last *commanded* pose, not the measured one,
as in Bridge's WidowX controller; the target is clipped to the workspace box and its gripper axis to
MAX_TILT from straight down. IK (warm-started from the last solution) turns the target into joint
set-points; action[6] in [-1, 1] is the absolute gripper opening (1 = open).
"""
from __future__ import annotations

import math

import mujoco
import numpy as np

from robot_rl.sim.widowx import robot
from robot_rl.sim.widowx.kinematics import WidowXKinematics

X_AXIS = np.array([1.0, 0.0, 0.0])


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation about the fixed x, then y, then z axes: Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    quat = np.zeros(4)
    mujoco.mju_euler2Quat(quat, np.array([roll, pitch, yaw], dtype=float), "XYZ")
    return quat_to_matrix(quat)


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=float))
    return mat.reshape(3, 3)


def clip_tilt(quat: np.ndarray, max_tilt: float) -> np.ndarray:
    """Turn quat so its gripper axis is at most max_tilt from pointing down, keeping its heading."""
    approach = np.zeros(3)
    mujoco.mju_rotVecQuat(approach, X_AXIS, quat)
    tilt = math.acos(min(1.0, max(-1.0, -approach[2])))
    if tilt <= max_tilt:
        return quat
    axis = np.array([-approach[1], approach[0], 0.0])  # approach x down: the axis that tilts it down
    norm = math.hypot(axis[0], axis[1])
    axis = axis / norm if norm > 1e-9 else np.array([0.0, 1.0, 0.0])
    turn, out = np.zeros(4), np.zeros(4)
    mujoco.mju_axisAngle2Quat(turn, axis, tilt - max_tilt)
    mujoco.mju_mulQuat(out, turn, quat)
    return out


class DeltaPoseController:
    def __init__(self, kinematics: WidowXKinematics | None = None, workspace_low=robot.WORKSPACE_LOW,
                 workspace_high=robot.WORKSPACE_HIGH, max_tilt: float = robot.MAX_TILT, ik_iters: int = 6):
        self.kin = kinematics or WidowXKinematics()
        self.low, self.high = np.asarray(workspace_low, float), np.asarray(workspace_high, float)
        if self.low.shape != (3,) or self.high.shape != (3,) or np.any(self.low >= self.high):
            raise ValueError(f"workspace box: expected low < high (3 values each, metres), found "
                             f"low={self.low}, high={self.high}")
        self.max_tilt = float(max_tilt)
        self.ik_iters = int(ik_iters)
        self.target_pos = robot.HOME_EE_POS.copy()
        self.target_quat = robot.HOME_EE_QUAT.copy()
        self.q_cmd = robot.HOME_QPOS.copy()
        self.opening = 1.0
        self._delta = np.zeros(4)
        self._rpy = np.zeros(3)

    def reset(self, q: np.ndarray, opening: float = 1.0) -> None:
        """Start from the arm's present joints: the target becomes their forward kinematics."""
        pos, quat = self.kin.forward(q)
        self.q_cmd = np.asarray(q, dtype=float).copy()
        self.target_pos = np.clip(pos, self.low, self.high)
        self.target_quat = clip_tilt(quat, self.max_tilt)
        self.opening = float(opening)

    @property
    def target_rot(self) -> np.ndarray:
        return quat_to_matrix(self.target_quat)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        """Move the target by a normalized action; return (arm joint set-points, finger set-point in m)."""
        action = np.asarray(action, dtype=float)
        if action.shape != (robot.ACTION_DIM,):
            raise ValueError(f"action: expected shape ({robot.ACTION_DIM},), found {action.shape}")
        action = np.clip(action, -1.0, 1.0)
        self.target_pos += action[:3] * robot.MAX_DELTA_POS
        np.clip(self.target_pos, self.low, self.high, out=self.target_pos)
        np.multiply(action[3:6], robot.MAX_DELTA_ROT, out=self._rpy)
        if self._rpy.any():
            mujoco.mju_euler2Quat(self._delta, self._rpy, "XYZ")  # extrinsic: about the base axes
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, self._delta, self.target_quat)
            quat = clip_tilt(quat, self.max_tilt)
            mujoco.mju_normalize4(quat)
            self.target_quat = quat
        self.q_cmd, _ = self.kin.solve_unchecked(self.target_pos, self.target_quat, self.q_cmd, self.ik_iters)
        self.opening = float(robot.gripper_action_to_opening(float(action[6])))
        return self.q_cmd, 0.5 * float(robot.opening_to_width(self.opening))
