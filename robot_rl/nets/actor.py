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
        mean, log_std = self.net(features).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized action in [-1, 1] and its log-probability (with the tanh Jacobian)."""
        mean, log_std = self(features)
        pre_tanh = mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(pre_tanh), squashed_log_prob(pre_tanh, mean, log_std)

    def log_prob(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """log pi(action | features) of given actions in [-1, 1] (the data's: edges pulled in by 1e-4,
        where tanh's inverse is finite)."""
        mean, log_std = self(features)
        pre_tanh = torch.atanh(action.clamp(-1.0 + 1e-4, 1.0 - 1e-4))
        return squashed_log_prob(pre_tanh, mean, log_std)

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(features)[0])


def squashed_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log-density of tanh(pre_tanh) under tanh(N(mean, exp(log_std)^2)), summed over action dimensions."""
    noise = (pre_tanh - mean) / log_std.exp()
    gaussian_log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    # log(1 - tanh(u)^2) written stably: 2 * (log 2 - u - softplus(-2u))
    log_det = (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)
    return gaussian_log_prob - log_det
