"""One training batch as torch tensors, whichever sampler it came from.

``action`` is flat: [B, h * A] for chunks of h actions (h = 1 for single steps). ``reward`` is the
discounted reward sum over the n steps or the chunk, ``discount`` the bootstrap factor (discount^n,
0 after a terminal), ``valid`` 0 where the TD target is undefined (a chunk running off a truncated
episode end), ``mc_return`` the Monte-Carlo return-to-go of ``obs`` (Cal-QL's lower bound) and
``source`` which replay each row came from (0 offline, 1 online in a mixture), and ``action_mask``
[B, h] 1 on the chunk's real actions, 0 on those padded past the episode's end (repeats of its last).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Batch:
    obs: dict[str, torch.Tensor]
    action: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor
    next_obs: dict[str, torch.Tensor]
    valid: torch.Tensor
    mc_return: torch.Tensor
    source: torch.Tensor
    action_mask: torch.Tensor | None = None  # None: every action is real

    def __len__(self) -> int:
        return self.action.shape[0]


def _tensor(x, device, dtype=None) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    return t if dtype is None else t.to(dtype)


def to_batch(sample: dict, device: str | torch.device = "cpu") -> Batch:
    """A :class:`Batch` from a ``TransitionSampler`` or ``ChunkSampler`` (or mixture) sample."""
    obs = {k: _tensor(v, device) for k, v in sample["obs"].items()}
    next_obs = {k: _tensor(v, device) for k, v in sample["next_obs"].items()}
    n = len(sample["index"])
    if "action_chunk" in sample:
        action = sample["action_chunk"].reshape(n, -1)
        reward, discount, valid = sample["chunk_reward"], sample["bootstrap_discount"], sample["td_valid"]
        action_mask = sample.get("action_mask", np.ones(sample["action_chunk"].shape[:2]))
    else:
        action, reward, discount, valid = sample["action"], sample["reward"], sample["discount"], np.ones(n)
        action_mask = np.ones((n, 1))
    source = sample.get("source", np.zeros(n, dtype=np.int64))
    f32 = torch.float32
    return Batch(obs, _tensor(action, device, f32), _tensor(reward, device, f32), _tensor(discount, device, f32),
                 next_obs, _tensor(valid, device, f32), _tensor(sample["mc_return"], device, f32),
                 _tensor(source, device), _tensor(action_mask, device, f32))
