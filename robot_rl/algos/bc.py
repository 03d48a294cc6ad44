"""Behaviour cloning: the baseline every learning result is read against. A deterministic policy
regresses the dataset's actions (MSE, or L1) from the observations the other algorithms read:

- state keys concatenated, into an MLP with a tanh output in [-1, 1] (the action convention);
- cameras through the same conv encoder as SAC's (:class:`~robot_rl.nets.ObservationEncoder`), trained
  here by the imitation loss, with DrQ's random shift while training;
- ``chunk: h > 1``: the policy emits a chunk of h actions (ACT-style), and the actions padded past an
  episode's end do not count in the loss.

One ``update`` is ``len(batches)`` gradient steps, one per minibatch; the plan is one offline phase.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from robot_rl.algos.agent import LearningAgent
from robot_rl.algos.batch import Batch
from robot_rl.algos.ops import imitation_loss, optimizer_step
from robot_rl.algos.plan import Phase
from robot_rl.algos.sac import ObservationShapes, config_from_dict
from robot_rl.nets import ObservationEncoder, mlp
from robot_rl.nets.encoders import DRQ_STRIDES

LOSSES = ("mse", "l1")


@dataclass
class BCConfig:
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 1e-3
    loss: str = "mse"                # mse | l1
    chunk: int = 1                   # actions per policy output (h)
    feature_dim: int = 50            # per-camera feature size
    augment_pad: int = 4             # DrQ random shift on camera images while training, pixels
    conv_strides: tuple[int, ...] = DRQ_STRIDES  # one 3x3 conv layer per stride, per camera
    normalize_obs: bool = False      # standardize state inputs by the dataset's mean/std (bc.yaml: on)

    @classmethod
    def from_dict(cls, d) -> BCConfig:
        config = config_from_dict(cls, d)
        if config.loss not in LOSSES:
            raise ValueError(f"algo.agent.loss: expected one of {LOSSES}, found {config.loss!r}")
        if config.chunk < 1:
            raise ValueError(f"algo.agent.chunk: expected h >= 1, found {config.chunk}")
        return config


def plan(schedule) -> list[Phase]:
    return [Phase("offline", updates=schedule.offline_updates, offline_ratio=1.0, utd=schedule.utd)]


class BC(LearningAgent):
    config_class = BCConfig

    def __init__(self, shapes: ObservationShapes, action_dim: int, config: BCConfig):
        super().__init__()
        self.config, self.shapes, self.action_dim = config, shapes, action_dim
        self.encoder = ObservationEncoder(shapes.state, shapes.cameras, config.feature_dim, config.augment_pad,
                                          config.normalize_obs, config.conv_strides)
        self.policy = mlp(self.encoder.out_dim, config.hidden, action_dim * config.chunk)
        self.optimizers = {"policy": torch.optim.Adam([*self.encoder.parameters(), *self.policy.parameters()],
                                                      lr=config.lr)}

    def forward(self, obs: dict[str, torch.Tensor], augment: bool = False) -> torch.Tensor:
        """Flat actions [B, h * A] in [-1, 1]."""
        return torch.tanh(self.policy(self.encoder(obs, augment=augment)))

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """Actions [N, A], or chunks [N, h, A]; the policy is deterministic, so ``deterministic`` changes nothing."""
        device = next(self.policy.parameters()).device
        action = self({k: torch.as_tensor(np.asarray(obs[k]), device=device) for k in self.encoder_keys}).cpu().numpy()
        return action.reshape(len(action), self.config.chunk, self.action_dim) if self.config.chunk > 1 else action

    def loss(self, predicted: torch.Tensor, batch: Batch) -> torch.Tensor:
        """MSE or L1 over the real actions of each row (a chunk's padding past the episode's end excluded)."""
        return imitation_loss(predicted, batch, self.action_dim, self.config.loss)

    def update(self, batches: list[Batch]) -> dict[str, float]:
        for batch in batches:
            loss = self.loss(self(batch.obs, augment=True), batch)
            optimizer_step(self.optimizers["policy"], loss)
        return {"bc_loss": loss.item()}


Agent = BC
