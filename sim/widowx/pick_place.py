"""WidowXPickPlace: "put the cube in the bowl", Bridge-style, with a 4 cm cube and a bowl placed at
random on the table.

Success: the cube rests (speed under 5 cm/s) inside the bowl (centre within 6 cm of the bowl's axis,
low enough to sit on its floor) and the gripper has let go (pads wider than the cube). Failure: the
cube leaves the table top.

Dense reward, staged like robosuite's PickPlace; the reward is the highest stage reached, in [0, 1]:
  reach   0.2 * (1 - tanh(10 * |gripper - cube|))
  grasp   0.3 while the cube is held between the closed pads
  carry   0.4 + 0.3 * (1 - tanh(10 * horizontal |cube - bowl|)) while held above the bowl's rim
  in bowl 0.8 once the cube is inside the bowl, not yet released or resting
  success 1.0
Sparse: 1.0 on success, else 0.0.

``cube_range=((x_low, y_low), (x_high, y_high))`` (metres, base frame) draws the cube's initial
position from that box instead of the whole placement area, e.g. to record demonstrations on one part
of the table and test at held-out positions outside it (CO-RFT's "unseen positions").
"""
from __future__ import annotations

import math

import numpy as np

from robot_rl.sim.twin import Evaluation
from robot_rl.sim.widowx.env import (
    BOWL_FLOOR,
    BOWL_INNER_RADIUS,
    CUBE_HALF,
    MIN_CUBE_BOWL_DISTANCE,
    OBJECT_HIGH,
    OBJECT_LOW,
    WidowXEnv,
)

IN_BOWL_RADIUS = BOWL_INNER_RADIUS - CUBE_HALF + 0.005  # centre distance: a face on the wall still counts
RIM_HEIGHT = 0.045
REST_SPEED = 0.05
GRASP_WIDTH = 2 * CUBE_HALF + 0.004  # pads closer than this with the cube between them: held


class WidowXPickPlace(WidowXEnv):
    task = "pick_place"

    def __init__(self, *, cube_range=None, **kwargs):
        self.cube_range = _check_cube_range(cube_range)
        super().__init__(**kwargs)
        self.model.geom_rgba[self.model.geom("target").id, 3] = 0.0  # no reach marker in this task

    def _reset_task(self, rng: np.random.Generator) -> None:
        self._reset_arm(rng)
        self._place_objects(rng)
        if self.cube_range is not None:
            self._place_cube_in_range(rng)

    def _place_cube_in_range(self, rng: np.random.Generator) -> None:
        """Move the cube into ``cube_range``; the bowl is drawn again while it would overlap."""
        low, high = self.cube_range
        while True:
            cube = rng.uniform(low, high)
            if np.linalg.norm(cube - self.data.mocap_pos[self._bowl][:2]) >= MIN_CUBE_BOWL_DISTANCE:
                break
            self.data.mocap_pos[self._bowl][:2] = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
        self.data.qpos[self._cube_qpos:self._cube_qpos + 2] = cube

    def _task_state(self) -> np.ndarray:
        return np.concatenate([self.data.xpos[self._cube], self.data.xquat[self._cube],
                               self.data.mocap_pos[self._bowl]])

    def cube_held(self) -> bool:
        """The cube sits between the pads and the pads are closed on it."""
        if self.gripper_width > GRASP_WIDTH:
            return False
        offset = self.data.xpos[self._cube] - self.data.site_xpos[self._ee]
        local = self.data.site_xmat[self._ee].reshape(3, 3).T @ offset  # in the gripper frame
        return abs(local[0]) < 0.025 and abs(local[1]) < 0.012 and abs(local[2]) < 0.02

    def cube_in_bowl(self) -> bool:
        cx, cy, cz = self.data.xpos[self._cube].tolist()
        bx, by, _ = self.data.mocap_pos[self._bowl].tolist()
        return math.hypot(cx - bx, cy - by) < IN_BOWL_RADIUS and cz < BOWL_FLOOR + 1.5 * CUBE_HALF

    def _evaluate(self, sparse: bool) -> Evaluation:
        data = self.data
        cx, cy, cz = data.xpos[self._cube].tolist()
        bx, by, _ = data.mocap_pos[self._bowl].tolist()
        bowl_distance = math.hypot(cx - bx, cy - by)
        in_bowl = bowl_distance < IN_BOWL_RADIUS and cz < BOWL_FLOOR + 1.5 * CUBE_HALF
        vx, vy, vz = data.qvel[self._cube_qvel:self._cube_qvel + 3].tolist()
        resting = vx * vx + vy * vy + vz * vz < REST_SPEED ** 2
        success = in_bowl and resting and self.gripper_width > GRASP_WIDTH  # released
        failure = self._cube_off_table()
        if sparse or success:
            return Evaluation(float(success), success, failure)
        ex, ey, ez = data.site_xpos[self._ee].tolist()
        reward = 0.2 * (1.0 - math.tanh(10.0 * math.dist((ex, ey, ez), (cx, cy, cz))))
        if self.cube_held():
            reward = 0.3
            if cz - CUBE_HALF > RIM_HEIGHT:
                reward = 0.4 + 0.3 * (1.0 - math.tanh(10.0 * bowl_distance))
        if in_bowl:
            reward = 0.8
        return Evaluation(reward, False, failure)


def _check_cube_range(cube_range) -> tuple[np.ndarray, np.ndarray] | None:
    if cube_range is None:
        return None
    box = np.asarray(cube_range, dtype=float)
    if box.shape != (2, 2) or not np.all(box[0] <= box[1]) or not np.all(np.isfinite(box)):
        raise ValueError(f"cube_range: expected ((x_low, y_low), (x_high, y_high)) in metres with low <= high, "
                         f"found {cube_range!r}")
    if np.any(box[0] < OBJECT_LOW) or np.any(box[1] > OBJECT_HIGH):
        raise ValueError(f"cube_range: expected a box inside the placement area {OBJECT_LOW.tolist()}.."
                         f"{OBJECT_HIGH.tolist()} (within reach), found {box.tolist()}")
    return box[0], box[1]
