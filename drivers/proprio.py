"""The spec's ``state`` key from a driver's joint positions, per robot: what the twin's observation holds,
computed for hardware from ``joint_states`` and the robot's forward kinematics.

    state_of = proprio_builder("widowx")
    state = state_of(names, positions)      # float32, the twin's ``state`` layout
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ProprioBuilder = Callable[[Sequence[str], Sequence[float]], np.ndarray]


def proprio_builder(robot: str) -> ProprioBuilder:
    if robot == "widowx":
        return WidowXProprio()
    raise ValueError(f"robot={robot!r}: no proprioception builder for joint_states (known: widowx); "
                     "record this robot from its twin, or add a builder to robot_rl.drivers.proprio")


def ordered_positions(names: Sequence[str], positions: Sequence[float], joint_names: Sequence[str]) -> np.ndarray:
    """``positions`` in ``joint_names`` order (names may be empty when every joint is given in that order)."""
    positions = np.asarray(positions, dtype=float)
    names = list(names)
    if not names:
        if positions.shape != (len(joint_names),):
            raise ValueError(f"joint_states: expected {len(joint_names)} positions for {tuple(joint_names)}, "
                             f"found {positions.size} without names")
        return positions
    missing = [n for n in joint_names if n not in names]
    if missing or len(names) != len(positions):
        raise ValueError(f"joint_states: expected the joints {tuple(joint_names)} with one position each, "
                         f"found names {names} and {positions.size} positions (missing {missing})")
    return positions[[names.index(n) for n in joint_names]]


class WidowXProprio:
    """The WidowX twin's 14-D state: 6 arm joints, gripper opening, end-effector position and quaternion
    (w >= 0), from the driver's 7 joints (the gripper as one finger's slide, m). The end-effector pose
    comes from ``WidowXKinematics.forward``, the twin's own model."""

    def __init__(self):
        from robot_rl.sim.widowx import robot as wx
        from robot_rl.sim.widowx.kinematics import WidowXKinematics

        self._wx = wx
        self.joint_names = wx.JOINT_NAMES
        self.kinematics = WidowXKinematics()

    def __call__(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        q = ordered_positions(names, positions, self.joint_names)
        pos, quat = self.kinematics.forward(q[:6])
        if quat[0] < 0:
            quat = -quat
        opening = self._wx.width_to_opening(2.0 * q[6])  # the fingers move together: width = 2 slides
        return np.concatenate([q[:6], [opening], pos, quat]).astype(np.float32)
