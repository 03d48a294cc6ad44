"""Scripted experts for the WidowX tasks: waypoint state machines on the twin's true state.

Each step servos the *measured* gripper pose toward a waypoint (proportional, clipped to the action
range), so the servos' gravity sag and the expert's own action noise are corrected on the next step.
The gripper is kept pointing down; for grasping its fingers turn to face the cube's sides.
"""
from __future__ import annotations

import mujoco
import numpy as np

from robot_rl.sim.expert import ScriptedExpert
from robot_rl.sim.widowx import robot
from robot_rl.sim.widowx.control import quat_to_matrix, rpy_matrix
from robot_rl.sim.widowx.env import CUBE_HALF

HOME_ROT = quat_to_matrix(robot.HOME_EE_QUAT)  # gripper down, fingers along the base y axis


def finger_yaw(rot: np.ndarray) -> float:
    """Heading of the fingers' closing axis (the ee y axis) about the vertical, 0 at home."""
    return float(np.arctan2(-rot[0, 1], rot[1, 1]))


def wrap(angle: float, period: float = 2 * np.pi) -> float:
    return float((angle + period / 2) % period - period / 2)


class _WidowXExpert(ScriptedExpert):
    # Fraction of the remaining error commanded per step: below 1 so that a step of action latency
    # (the "perturbed" dynamics) damps out instead of ringing.
    gain = 0.6

    def servo(self, goal: np.ndarray, yaw: float | None = None, gripper: float = 1.0) -> np.ndarray:
        """Action moving the gripper to goal (m), pointing down with the fingers at yaw (keep if None)."""
        env = self.env
        action = np.empty(robot.ACTION_DIM)
        action[:3] = self.gain * (goal - env.ee_pos) / robot.MAX_DELTA_POS
        rot = env.ee_rot
        desired = rpy_matrix(0.0, 0.0, finger_yaw(rot) if yaw is None else yaw) @ HOME_ROT
        turn = np.zeros(4)
        mujoco.mju_mat2Quat(turn, (desired @ rot.T).reshape(9))
        mujoco.mju_quat2Vel(action[3:6], turn, 1.0)  # rotation vector; small turns: roll, pitch, yaw
        action[3:6] *= self.gain / robot.MAX_DELTA_ROT
        action[6] = gripper
        return np.clip(action, -1.0, 1.0)


class WidowXReachExpert(_WidowXExpert):
    def plan(self) -> np.ndarray:
        return self.servo(self.env.target_pos)


class WidowXPickPlaceExpert(_WidowXExpert):
    HOVER = 0.07          # above the cube before descending (m)
    CARRY_HEIGHT = 0.13   # gripper height while carrying: the cube clears the bowl's rim
    DROP_HEIGHT = 0.09    # gripper height when letting go over the bowl
    GRASP_DEPTH = 0.003   # gripper centre this far above the cube's centre when closing

    def __init__(self, env, noise: float = 0.0, seed: int | None = None):
        super().__init__(env, noise, seed)
        self.reset()

    def reset(self) -> None:
        self.phase = "approach"
        self.wait = 0

    def plan(self) -> np.ndarray:
        env = self.env
        cube, bowl, ee = env.cube_pos, env.bowl_pos, env.ee_pos
        cube_yaw = 2 * np.arctan2(env.cube_quat[3], env.cube_quat[0])
        yaw = finger_yaw(env.ee_rot)
        grasp_yaw = yaw + wrap(cube_yaw - yaw, np.pi / 2)  # nearest heading that faces the cube's sides
        held = env.cube_held()
        if self.phase in ("lift", "carry", "lower") and not held:
            self.phase = "approach"  # dropped it: start over

        if self.phase == "approach":
            goal = cube + [0.0, 0.0, self.HOVER]
            if np.linalg.norm(goal - ee) < 0.015 and abs(grasp_yaw - yaw) < 0.08:
                self.phase = "descend"
            return self.servo(goal, grasp_yaw, 1.0)
        if self.phase == "descend":
            goal = cube + [0.0, 0.0, self.GRASP_DEPTH]
            if np.linalg.norm(goal[:2] - ee[:2]) > 0.02:
                self.phase = "approach"
            elif np.linalg.norm(goal - ee) < 0.008:
                self.phase, self.wait = "close", 0
            return self.servo(goal, grasp_yaw, 1.0)
        if self.phase == "close":
            self.wait += 1
            if held or self.wait > 3:
                self.phase = "lift" if held else "approach"
            return self.servo(cube + [0.0, 0.0, self.GRASP_DEPTH], None, -1.0)
        if self.phase == "lift":
            goal = np.array([ee[0], ee[1], self.CARRY_HEIGHT])
            if cube[2] - CUBE_HALF > 0.06:
                self.phase = "carry"
            return self.servo(goal, None, -1.0)
        if self.phase == "carry":
            goal = np.array([bowl[0], bowl[1], self.CARRY_HEIGHT])
            if np.linalg.norm(goal[:2] - ee[:2]) < 0.015:
                self.phase = "lower"
            return self.servo(goal, None, -1.0)
        if self.phase == "lower":
            goal = np.array([bowl[0], bowl[1], self.DROP_HEIGHT])
            if np.linalg.norm(goal - ee) < 0.015:
                self.phase = "release"
            return self.servo(goal, None, -1.0)
        # release: open and back off upward once the cube is out of the fingers
        return self.servo(np.array([ee[0], ee[1], self.CARRY_HEIGHT]) if env.gripper_width > 0.06 else ee,
                          None, 1.0)
