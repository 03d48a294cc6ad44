"""The Franka's 7-D action as joint targets: the twin's Cartesian target step (robot_rl.sim.franka.targets:
the same POS_STEP / ROT_STEP scaling, safety box and orientation limits), then IK on the Panda model.

    controller = FrankaDeltaPoseController()
    controller.reset(q_measured, opening)          # the target starts at the measured TCP pose
    arm_q, finger = controller.step(action)        # 7 joint targets (rad) and one finger's slide (m)

The delta applies to the last *commanded* target, as in the twin. A target the IK cannot reach keeps the
previous target and joints (the executed action reads as no move).
"""
from __future__ import annotations

import numpy as np

from robot_rl.sim.franka import panda
from robot_rl.sim.franka.kinematics import IKError, PandaKinematics
from robot_rl.sim.franka.targets import gripper_width, step_target


class FrankaDeltaPoseController:
    def __init__(self, kinematics: PandaKinematics | None = None):
        self.kinematics = kinematics or PandaKinematics()
        self.q = panda.HOME_QPOS.copy()
        self.target_pos, self.target_quat = self.kinematics.forward(self.q)
        self.finger = panda.GRIPPER_MAX_WIDTH / 2

    def reset(self, q: np.ndarray, opening: float) -> None:
        self.q = np.asarray(q, dtype=float)[:7].copy()
        self.target_pos, self.target_quat = self.kinematics.forward(self.q)
        self.finger = 0.5 * gripper_width(2.0 * float(opening) - 1.0)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        action = np.asarray(action, dtype=float)
        pos, quat = step_target(self.target_pos, self.target_quat, action)
        try:
            q = self.kinematics.inverse(pos, quat, self.q)
        except IKError:
            q, pos, quat = self.q, self.target_pos, self.target_quat
        self.q, self.target_pos, self.target_quat = q, pos, quat
        self.finger = 0.5 * gripper_width(float(np.clip(action[6], -1.0, 1.0)))
        return q.copy(), self.finger
