"""Scripted experts for the Franka tasks: waypoint state machines on the twin's true state.

Each step the expert picks a TCP goal pose for its phase and moves the impedance target part of the
way there (GAIN of the gap, at most one action's reach); phases advance on the measured TCP.
"""
from __future__ import annotations

import numpy as np

from robot_rl.sim.expert import ScriptedExpert
from robot_rl.sim.franka import panda
from robot_rl.sim.franka.lift import CUBE_HALF, LIFT_HEIGHT, FrankaLift
from robot_rl.sim.franka.peg_insert import INSERT_DEPTH, FrankaPegInsert
from robot_rl.sim.franka.twin import FrankaTwin
from robot_rl.sim.rotations import local_rotvec, quat_exp, quat_mul, world_rotvec, yaw_quat

# Fraction of the remaining gap each action closes. Below 1 so a command that lands a step late (action
# latency) does not overshoot: with one step of delay the closed loop stays stable for any gain < 1.
GAIN = 0.6


def move_toward(env: FrankaTwin, pos: np.ndarray, quat: np.ndarray, gripper: float) -> np.ndarray:
    """The action that moves the impedance target toward (pos, quat), at most one action's reach."""
    action = np.empty(7)
    action[:3] = GAIN * (pos - env.target_pos) / panda.POS_STEP
    action[3:6] = GAIN * world_rotvec(quat, env.target_quat) / panda.ROT_STEP
    action[6] = gripper
    return np.clip(action, -1.0, 1.0)


def upright(quat: np.ndarray) -> np.ndarray:
    """The downward-pointing orientation with quat's turn about the vertical (tilt removed)."""
    turn = local_rotvec(quat, panda.NOMINAL_QUAT)
    return quat_mul(panda.NOMINAL_QUAT, quat_exp(np.array([0.0, 0.0, turn[2]])))


class FrankaLiftExpert(ScriptedExpert):
    """Hover over the cube with the fingers square to its faces, descend, close, lift (and start over
    if the cube slips out)."""

    HOVER = 0.08        # m above the cube centre
    CLOSE_STEPS = 4     # control steps to let the gripper close before lifting

    def __init__(self, env: FrankaLift, noise: float = 0.0, seed: int | None = None):
        super().__init__(env, noise, seed)
        if not isinstance(self.env, FrankaLift):
            raise ValueError(f"FrankaLiftExpert drives FrankaLift, found {type(self.env).__name__}")
        self.reset()

    def reset(self) -> None:
        self.phase, self.closing = "hover", 0

    def _grasp_quat(self) -> np.ndarray:
        # The cube looks the same every quarter turn: take the face yaw nearest to the hand's own.
        cube_yaw = local_rotvec(self.env.cube_quat, np.array([1.0, 0.0, 0.0, 0.0]))[2]
        hand_yaw = -local_rotvec(self.env.target_quat, panda.NOMINAL_QUAT)[2]  # nominal z points down
        yaw = hand_yaw + (cube_yaw - hand_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
        return quat_mul(yaw_quat(yaw), panda.NOMINAL_QUAT)

    def plan(self) -> np.ndarray:
        env = self.env
        cube, tcp = env.cube_pos, env.tcp_pos
        if self.phase == "hover":
            goal = cube + [0.0, 0.0, self.HOVER]
            quat = self._grasp_quat()
            turned = np.linalg.norm(world_rotvec(quat, env.tcp_quat)) < 0.05
            if np.linalg.norm(tcp - goal) < 0.015 and turned:
                self.phase = "descend"
            return move_toward(env, goal, quat, 1.0)
        if self.phase == "descend":
            goal = cube.copy()
            if np.linalg.norm(tcp - goal) < 0.008:
                self.phase = "close"
            return move_toward(env, goal, env.target_quat, 1.0)
        if self.phase == "close":
            self.closing += 1
            if self.closing >= self.CLOSE_STEPS:
                self.phase = "lift"
            return move_toward(env, env.target_pos, env.target_quat, -1.0)
        if tcp[2] - cube[2] > 0.03 and not env.grasped():  # the cube slipped out: start over
            self.reset()
            return move_toward(env, env.target_pos, env.target_quat, 1.0)
        goal = np.array([cube[0], cube[1], CUBE_HALF + LIFT_HEIGHT + 0.05])
        return move_toward(env, goal, env.target_quat, -1.0)


class FrankaPegInsertExpert(ScriptedExpert):
    """Straighten the peg, put its tip over the hole, then push it down the hole (the rounded tip and the
    arm's compliance absorb what misalignment is left)."""

    ABOVE = 0.02        # m, the tip's height over the hole before going in

    def __init__(self, env: FrankaPegInsert, noise: float = 0.0, seed: int | None = None):
        super().__init__(env, noise, seed)
        if not isinstance(self.env, FrankaPegInsert):
            raise ValueError(f"FrankaPegInsertExpert drives FrankaPegInsert, found {type(self.env).__name__}")
        self.reset()

    def reset(self) -> None:
        self.phase = "align"

    def plan(self) -> np.ndarray:
        env = self.env
        tip, hole, tcp = env.tip_pos, env.hole_pos, env.tcp_pos
        quat = upright(env.target_quat)
        if self.phase == "align":
            goal_tip = hole + [0.0, 0.0, self.ABOVE]
            straight = np.linalg.norm(world_rotvec(quat, env.tcp_quat)) < 0.03
            if np.linalg.norm(tip[:2] - hole[:2]) < 0.002 and abs(tip[2] - goal_tip[2]) < 0.01 and straight:
                self.phase = "insert"
        else:
            goal_tip = hole - [0.0, 0.0, INSERT_DEPTH + 0.015]
            goal_tip[:2] = hole[:2]
        return move_toward(env, tcp + goal_tip - tip, quat, -1.0)
