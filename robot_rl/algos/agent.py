"""The base of every algorithm's agent: what the trainer, checkpoints and policy loaders use. What an
agent can do beyond acting and updating is said by explicit class attributes and no-op hooks, never
found out with ``hasattr``."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from robot_rl.algos.batch import Batch
from robot_rl.algos.plan import Phase


class LearningAgent(torch.nn.Module):
    config_class: ClassVar[type]             # the config dataclass, built by ``config_class.from_dict``
    reads_instructions: ClassVar[bool] = False  # configure() is given the dataset's episode instructions
    optimizers: dict[str, torch.optim.Optimizer]  # saved and restored with the checkpoints

    @staticmethod
    def configure(cfg, env, instructions: list[str]) -> None:
        """Fill in the settings the run decides (saved in its config) before the agent is built."""

    def begin_phase(self, phase: Phase) -> None:
        """Called by the trainer as each phase of the plan starts (and again on a resume)."""

    @property
    def encoder_keys(self) -> tuple[str, ...]:
        return (*self.shapes.state, *self.shapes.cameras)

    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        raise NotImplementedError

    def update(self, batches: list[Batch]) -> dict[str, float]:
        raise NotImplementedError
