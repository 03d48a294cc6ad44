"""The SAC policy: a Gaussian over pre-squash actions, squashed by tanh into [-1, 1]."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.nets.ensemble import mlp

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as in SAC (Haarnoja et al. 2018) and rlpd's TanhNormal


class TanhGaussianActor(nn.Module):
    def __init__(self, feature_dim: int, action_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.action_dim = action_dim
        self.net = mlp(feature_dim, hidden, 2 * action_dim)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean_and_log_std(self.net(features))

    @staticmethod
    def mean_and_log_std(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = output.chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized action in [-1, 1] and its log-probability (with the tanh Jacobian)."""
        mean, log_std = self(features)
        pre_tanh = mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(pre_tanh), squashed_log_prob(pre_tanh, mean, log_std)

    def log_prob(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """log pi(action | features) of given actions in [-1, 1] (the data's)."""
        mean, log_std = self(features)
        return squashed_log_prob(inverse_tanh(action), mean, log_std)

    def spread_log_prob(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """log pi(action | features) through which only the log-std rows of the output layer learn: the
        hidden layers and the mean are detached. Fitting the spread to the data this way cannot move the
        mean or its features; through the whole network the data's +-1 gripper actions (4.95 before tanh)
        dominate the shared layers and halved weighted BC's success on pick-and-place (31% against 60%)."""
        mean, log_std = self.mean_and_log_std(self.net[-1](self.net[:-1](features).detach()))
        return squashed_log_prob(inverse_tanh(action), mean.detach(), log_std)

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(features)[0])


def inverse_tanh(action: torch.Tensor) -> torch.Tensor:
    """atanh of actions in [-1, 1], the edges pulled in by 1e-4 so it stays finite."""
    return torch.atanh(action.clamp(-1.0 + 1e-4, 1.0 - 1e-4))


def squashed_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log-density of tanh(pre_tanh) under tanh(N(mean, exp(log_std)^2)), summed over action dimensions."""
    noise = (pre_tanh - mean) / log_std.exp()
    gaussian_log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    # log(1 - tanh(u)^2) written stably: 2 * (log 2 - u - softplus(-2u))
    log_det = (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)
    return gaussian_log_prob - log_det
