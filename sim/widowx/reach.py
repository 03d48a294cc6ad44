"""WidowXReach: bring the gripper to a random point above the table (the green ball).

Success: the end effector within 2 cm of the target. Dense reward: 1 - tanh(10 d), d the distance
in metres (0.76 at 1 cm, 0.04 at 20 cm); sparse: 1.0 on success, else 0.0. The cube and bowl stay on
the table as distractors; targets keep the gripper's fingertips above them.
"""
from __future__ import annotations

import math

import numpy as np

from robot_rl.sim.twin import Evaluation
from robot_rl.sim.widowx.env import WidowXEnv

SUCCESS_RADIUS = 0.02
TARGET_LOW = np.array([0.18, -0.20, 0.08])
TARGET_HIGH = np.array([0.40, 0.20, 0.25])


class WidowXReach(WidowXEnv):
    task = "reach"
    init_joint_noise = 0.1

    @property
    def target_pos(self) -> np.ndarray:
        return self.data.mocap_pos[self._target].copy()

    def _reset_task(self, rng: np.random.Generator) -> None:
        self._reset_arm(rng)
        self._place_objects(rng)
        self.data.mocap_pos[self._target] = rng.uniform(TARGET_LOW, TARGET_HIGH)

    def _task_state(self) -> np.ndarray:
        return self.data.mocap_pos[self._target].copy()

    def _evaluate(self, sparse: bool) -> Evaluation:
        distance = math.dist(self.data.site_xpos[self._ee].tolist(), self.data.mocap_pos[self._target].tolist())
        success = distance <= SUCCESS_RADIUS
        reward = float(success) if sparse else 1.0 - math.tanh(10.0 * distance)
        return Evaluation(reward, success)
