"""The base of every algorithm's agent: what the trainer, checkpoints and policy loaders use. What an
agent can do beyond acting and updating is said by explicit class attributes and no-op hooks, never
found out with ``hasattr``."""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar

import numpy as np
import torch

from robot_rl.algos.batch import Batch
from robot_rl.algos.plan import Phase
from robot_rl.nets import ObservationEncoder


class LearningAgent(torch.nn.Module, metaclass=ABCMeta):
    config_class: ClassVar[type]             # the config dataclass, built by ``config_class.from_dict``
    reads_instructions: ClassVar[bool] = False  # configure() is given the dataset's episode instructions
    optimizers: dict[str, torch.optim.Optimizer]  # saved and restored with the checkpoints

    @staticmethod
    def configure(cfg, env, instructions: list[str]) -> None:
        """Fill in the settings the run decides (saved in its config) before the agent is built."""

    def begin_phase(self, phase: Phase) -> None:
        """Called by the trainer as each phase of the plan starts (and again on a resume)."""

    def set_state_statistics(self, stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Standardize the state inputs by ``stats`` (per key: mean, std; the offline dataset's) in every
        encoder built to normalize; the statistics are buffers, saved and loaded with the weights."""
        for module in self.modules():
            if isinstance(module, ObservationEncoder) and module.normalize:
                module.set_state_statistics(stats)

    @property
    def encoder_keys(self) -> tuple[str, ...]:
        return (*self.shapes.state, *self.shapes.cameras)

    @abstractmethod
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """Actions for a batch of observations."""

    @abstractmethod
    def update(self, batches: list[Batch]) -> dict[str, float]:
        """One update on ``batches``; the logged numbers."""
