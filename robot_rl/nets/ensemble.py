"""E MLPs evaluated as one: every layer's weights are stacked into an [E, in, out] tensor and the
whole ensemble runs as batched matmuls (``torch.baddbmm``), with no Python loop over members.

``members`` picks a subset (a LongTensor of member indices): only those members' weights are used,
so a min-over-two target costs 2/E of the full ensemble's arithmetic.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleLinear(nn.Module):
    """E independent ``nn.Linear(in, out)`` layers; input [E, B, in] -> [E, B, out]. Each member
    is initialized as ``nn.Linear`` would be (Kaiming-uniform weights, uniform bias)."""

    def __init__(self, ensemble_size: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)  # kaiming_uniform(a=sqrt(5)) reduces to this
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return torch.baddbmm(b, x, w)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over features with a separate affine transform per member."""

    def __init__(self, ensemble_size: int, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble_size, 1, features))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, features))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return F.layer_norm(x, x.shape[-1:]) * w + b


class EnsembleMLP(nn.Module):
    """E MLPs ``in -> hidden... -> out`` with ReLU (and LayerNorm after each hidden Linear when
    ``layer_norm``, as RLPD's critic). Input [B, in] (shared by all members) or [E, B, in];
    output [E, B, out], or [len(members), B, out] for a subset."""

    def __init__(self, ensemble_size: int, in_features: int, hidden: tuple[int, ...], out_features: int,
                 layer_norm: bool = False):
        super().__init__()
        self.ensemble_size = ensemble_size
        sizes = (in_features, *hidden)
        self.linears = nn.ModuleList(EnsembleLinear(ensemble_size, a, b) for a, b in zip(sizes, sizes[1:]))
        self.norms = nn.ModuleList(EnsembleLayerNorm(ensemble_size, h) for h in hidden) if layer_norm else None
        self.head = EnsembleLinear(ensemble_size, sizes[-1], out_features)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        n = self.ensemble_size if members is None else len(members)
        if x.dim() == 2:
            x = x.expand(n, *x.shape)
        for i, linear in enumerate(self.linears):
            x = linear(x, members)
            if self.norms is not None:
                x = self.norms[i](x, members)
            x = F.relu(x)
        return self.head(x, members)


def mlp(in_features: int, hidden: tuple[int, ...], out_features: int, layer_norm: bool = False) -> nn.Sequential:
    """A plain MLP with the same layout as one member of :class:`EnsembleMLP`."""
    layers, size = [], in_features
    for h in hidden:
        layers += [nn.Linear(size, h), *([nn.LayerNorm(h)] if layer_norm else []), nn.ReLU()]
        size = h
    return nn.Sequential(*layers, nn.Linear(size, out_features))
