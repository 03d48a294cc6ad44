"""FrankaPegInsert: insert the held peg into the hole of a fixture on the table.

The peg (a 24 mm round peg, 114 mm long) starts grasped, its centre 25 mm below the TCP, and the
gripper stays closed: this task ignores action[6], as SERL's peg insertion does. The hole is a 30 mm
square, 50 mm deep (3 mm clearance each side).
Reset: the fixture at a random spot (x 0.45-0.60 m, y +-0.15 m); the TCP at a random pose 20-30 cm
above the table, yaw +-0.3 rad, tilted up to 0.1 rad.
Success: the peg tip at least INSERT_DEPTH below the top of the hole, inside it.
Failure (ends the episode): the peg slipped out of the hand.
Dense reward, in [0, 1]: 0.5 (1 - tanh(10 |tip - hole top centre|)) + 0.5 min(depth / INSERT_DEPTH, 1)
while the tip is inside the hole's outline; 1.0 on success. Sparse: 1.0 on success, else 0.
"""
from __future__ import annotations

import math
from typing import ClassVar

import mujoco
import numpy as np

from robot_rl.sim.franka import panda
from robot_rl.sim.franka.twin import FrankaTwin
from robot_rl.sim.twin import Evaluation

PEG_RADIUS = 0.012
GRIP_OFFSET = 0.025     # m, peg centre below the TCP along the hand axis
TIP_BELOW_TCP = 0.082   # m, GRIP_OFFSET + half the peg's length
HOLE_TOP = 0.05         # m, height of the fixture
HOLE_HALF_WIDTH = 0.015
INSERT_DEPTH = 0.02
SETTLE_TIME = 0.02      # s of physics after placing the peg, so the grasp carries it from step 0


class FrankaPegInsert(FrankaTwin):
    scene: ClassVar[str] = "franka/peg_insert.xml"
    task: ClassVar[str] = "peg_insert"
    start_low: ClassVar[np.ndarray] = np.array([0.40, -0.12, 0.20])
    start_high: ClassVar[np.ndarray] = np.array([0.55, 0.12, 0.30])
    start_tilt: ClassVar[float] = 0.1
    fixture_low: ClassVar[np.ndarray] = np.array([0.45, -0.15])
    fixture_high: ClassVar[np.ndarray] = np.array([0.60, 0.15])
    # the tip may go down to 5 mm above the table: inside the hole, never pressed into the table
    safety_low: ClassVar[np.ndarray] = np.array([*panda.SAFETY_BOX_LOW[:2], TIP_BELOW_TCP + 0.005])

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._peg_qpos = self.model.joint("peg").qposadr[0]
        self._peg_body = self.model.body("peg").id
        self._tip = self.model.site("peg_tip").id
        self._fixture_mocap = self.model.body("fixture").mocapid[0]
        self._hole = self.model.site("hole").id

    def _reset_task(self, rng: np.random.Generator) -> None:
        self.data.mocap_pos[self._fixture_mocap, :2] = rng.uniform(self.fixture_low, self.fixture_high)
        self._place_arm(rng, tilt=self.start_tilt)
        self._set_fingers(2 * PEG_RADIUS - 0.0004)  # pads just pressed on the peg
        self._command_gripper(-1.0)
        mujoco.mj_kinematics(self.model, self.data)
        axis = self.data.site_xmat[self._tcp].reshape(3, 3)[:, 2]
        peg = self.data.qpos[self._peg_qpos:self._peg_qpos + 7]
        peg[:3] = self.data.site_xpos[self._tcp] + GRIP_OFFSET * axis
        peg[3:] = self.tcp_quat
        mujoco.mj_step(self.model, self.data, nstep=round(SETTLE_TIME / self.model.opt.timestep))

    def _command_gripper(self, command: float) -> None:
        super()._command_gripper(-1.0)

    def _task_state(self) -> np.ndarray:
        return np.concatenate([self.data.site_xpos[self._tip], self.data.site_xpos[self._hole]])

    @property
    def tip_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._tip].copy()

    @property
    def hole_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._hole].copy()

    def _evaluate(self, sparse: bool) -> Evaluation:
        tip, hole = self.data.site_xpos[self._tip], self.data.site_xpos[self._hole]
        inside = abs(tip[0] - hole[0]) < HOLE_HALF_WIDTH and abs(tip[1] - hole[1]) < HOLE_HALF_WIDTH
        depth = hole[2] - tip[2]
        success = bool(inside and depth >= INSERT_DEPTH)
        slip = self.data.xpos[self._peg_body] - self.data.site_xpos[self._tcp]
        dropped = not success and math.sqrt(slip @ slip) > 2 * GRIP_OFFSET
        if sparse or success:
            return Evaluation(float(success), success, dropped)
        gap = tip - hole
        reward = 0.5 * (1.0 - math.tanh(10.0 * math.sqrt(gap @ gap)))
        if inside:
            reward += 0.5 * min(max(depth, 0.0) / INSERT_DEPTH, 1.0)
        return Evaluation(float(reward), False, dropped)
