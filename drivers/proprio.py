"""The spec's ``state`` key from a driver's joint positions, per robot: what the twin's observation holds,
computed for hardware from ``joint_states`` and the robot's forward kinematics.

    state_of = proprio_builder("widowx")
    state = state_of(names, positions, velocities)   # float32, the twin's ``state`` layout
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ProprioBuilder = Callable[[Sequence[str], Sequence[float], Sequence[float]], np.ndarray]  # velocities may be ()


def proprio_builder(robot: str) -> ProprioBuilder:
    """The robot's builder, from its robot-layer module (robot_rl.drivers.robot)."""
    from robot_rl.drivers.robot import robot_definition

    return robot_definition(robot).make_proprio()


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
