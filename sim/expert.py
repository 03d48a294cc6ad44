"""Scripted experts: a hand-written policy per task that reads the twin's true state.

An expert's clean action comes from ``plan``; ``noise`` adds Gaussian noise (std, in normalized
action units) so collected data covers more than one path. Experts read privileged state through
``env`` (the unwrapped twin), which a policy never sees.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from robot_rl.sim.twin import TwinEnv


class ScriptedExpert(ABC):
    def __init__(self, env: TwinEnv, noise: float = 0.0, seed: int | None = None):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Called after every env.reset(): forget the plan of the last episode."""

    @abstractmethod
    def plan(self) -> np.ndarray:
        """The clean action for the twin's current state, in [-1, 1]."""

    def __call__(self, obs=None) -> np.ndarray:
        action = self.plan()
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
