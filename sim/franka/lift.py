"""FrankaLift: pick the 4 cm cube off the table and lift it 10 cm.

Reset: the TCP at a random pose 18-28 cm above the table (pointing down, yaw +-0.3 rad), the gripper
open, the cube at a random spot (x 0.42-0.58 m, y +-0.12 m) with a random yaw.
Success: the cube's centre at least LIFT_HEIGHT above where it rests on the table.
Dense reward, in [0, 1]: 0.25 (1 - tanh(10 |TCP - cube|)) + 0.25 [both pads touch the cube]
+ 0.5 min(height gained / LIFT_HEIGHT, 1); 1.0 on success. Sparse: 1.0 on success, else 0.
"""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from robot_rl.sim.franka.panda import GRIPPER_MAX_WIDTH
from robot_rl.sim.franka.twin import FrankaTwin
from robot_rl.sim.rotations import yaw_quat
from robot_rl.sim.twin import Evaluation

CUBE_HALF = 0.02
LIFT_HEIGHT = 0.10


class FrankaLift(FrankaTwin):
    scene: ClassVar[str] = "franka/lift.xml"
    task: ClassVar[str] = "lift"
    cube_low: ClassVar[np.ndarray] = np.array([0.42, -0.12])
    cube_high: ClassVar[np.ndarray] = np.array([0.58, 0.12])

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._cube_qpos = self.model.joint("cube").qposadr[0]
        self._cube_body = self.model.body("cube").id
        self._cube_geom = self.model.geom("cube").id

    def _reset_task(self, rng: np.random.Generator) -> None:
        self._place_arm(rng)
        self._set_fingers(GRIPPER_MAX_WIDTH)
        self._command_gripper(1.0)
        cube = self.data.qpos[self._cube_qpos:self._cube_qpos + 7]
        cube[:2] = rng.uniform(self.cube_low, self.cube_high)
        cube[2] = CUBE_HALF
        cube[3:] = yaw_quat(rng.uniform(-np.pi, np.pi))

    def _task_state(self) -> np.ndarray:
        return self.data.qpos[self._cube_qpos:self._cube_qpos + 7].copy()

    @property
    def cube_pos(self) -> np.ndarray:
        return self.data.xpos[self._cube_body].copy()

    @property
    def cube_quat(self) -> np.ndarray:
        return self.data.xquat[self._cube_body].copy()

    def grasped(self) -> bool:
        return self._pads_hold(self._cube_geom)

    def _evaluate(self, sparse: bool) -> Evaluation:
        cube = self.data.xpos[self._cube_body]
        height = cube[2] - CUBE_HALF
        success = bool(height >= LIFT_HEIGHT)
        if sparse or success:
            return Evaluation(float(success), success)
        gap = self.data.site_xpos[self._tcp] - cube
        distance = math.sqrt(gap @ gap)
        held = distance < 2 * CUBE_HALF and self.grasped()
        lifted = min(max(height, 0.0) / LIFT_HEIGHT, 1.0)
        reward = 0.25 * (1.0 - math.tanh(10.0 * distance)) + 0.25 * held + 0.5 * lifted
        return Evaluation(float(reward), False)
