"""Q(s, a) as a batched ensemble over encoded observations and (flattened) actions."""
from __future__ import annotations

import torch
from torch import nn

from robot_rl.nets.ensemble import EnsembleMLP


class CriticEnsemble(nn.Module):
    """E critics in one module; ``forward`` returns [E, B] (or [len(members), B])."""

    def __init__(self, feature_dim: int, action_dim: int, ensemble_size: int, hidden: tuple[int, ...],
                 layer_norm: bool):
        super().__init__()
        self.ensemble_size = ensemble_size
        self.net = EnsembleMLP(ensemble_size, feature_dim + action_dim, hidden, 1, layer_norm)

    def forward(self, features: torch.Tensor, action: torch.Tensor,
                members: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(torch.cat([features, action], dim=-1), members).squeeze(-1)

    def random_members(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k distinct member indices (REDQ's random subset for the min in the target)."""
        return torch.randperm(self.ensemble_size, generator=generator)[:k]
