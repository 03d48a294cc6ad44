"""Tensor functions the algorithms share (SAC, CQL / Cal-QL, H2O, CO-RFT): one definition of each,
so a fix to one reaches all.

Shapes: B rows in a batch, E critic members, n sampled actions per row.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the entries where ``mask`` is 1. ``mask`` broadcasts from the right, so a
    row mask [B] serves values [E, B] (every member averaged over the same rows). Padding rows (mask 0)
    count neither in the sum nor in the count; an all-zero mask gives 0."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.expand_as(values).sum().clamp(min=1)


def imitation_loss(predicted: torch.Tensor, batch, action_dim: int, kind: str = "mse") -> torch.Tensor:
    """MSE (or L1) of flat predicted actions [B, h * A] to the batch's, over the chunk's real actions only
    (those padded past an episode's end, ``batch.action_mask`` 0, do not count)."""
    error = predicted - batch.action
    error = error.pow(2) if kind == "mse" else error.abs()
    if batch.action_mask is None:
        return error.mean()
    return masked_mean(error, batch.action_mask.repeat_interleave(action_dim, dim=1))


@torch.no_grad()
def polyak_update(pairs: Iterable[tuple[nn.Module, nn.Module]], tau: float) -> None:
    """Move each target's parameters a fraction ``tau`` toward its online net's (tau = 1 copies)."""
    for net, target in pairs:
        for p, tp in zip(net.parameters(), target.parameters()):
            tp.lerp_(p, tau)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One gradient step of ``optimizer`` on ``loss`` (gradients cleared first)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def q_per_action(critic: nn.Module, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q of every member for n actions per row: features [B, F], actions [n, B, A] -> [E, n, B]."""
    n, b = actions.shape[:2]
    return critic(features.repeat(n, 1), actions.reshape(n * b, -1)).reshape(-1, n, b)


def conservative_gap(scored: torch.Tensor, q_data: torch.Tensor, valid: torch.Tensor,
                     temperature: float) -> torch.Tensor:
    """CQL(H)'s gap: the mean over members and valid rows of t * logsumexp_n(scored / t) - Q(s, a_data).
    ``scored`` [E, n, B] is each sampled action's Q minus its log sampling density, q_data [E, B]."""
    soft_max = temperature * torch.logsumexp(scored / temperature, dim=1)
    return masked_mean(soft_max - q_data, valid)
