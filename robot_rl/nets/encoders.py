"""Observation encoders: proprioceptive keys are concatenated (and, with ``normalize``, standardized by
the offline dataset's mean and std; the actor's and critic's MLPs are the state MLP); each camera goes
through its own small conv net (the DrQ / SAC-AE encoder), trained by the critic loss only; the actor
reads detached features (Yarats et al. 2021)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def random_shift(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ's augmentation: pad [B, C, H, W] by ``pad`` (edge replicate), crop back at a random
    offset per image."""
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (2, b, 1), generator=generator, device=images.device)
    rows = (offsets[0] + torch.arange(h, device=images.device))[:, :, None]  # [B, H, 1]
    cols = (offsets[1] + torch.arange(w, device=images.device))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # advanced indexing puts C last


DRQ_STRIDES = (2, 1, 1, 1)  # SAC-AE's and DrQ's four 3x3 convs


class ConvEncoder(nn.Module):
    """uint8 [B, H, W, 3] -> [B, feature_dim]: one 3x3 conv layer of 32 channels per entry of ``strides``
    (SAC-AE's and DrQ's (2, 1, 1, 1) by default), then Linear, LayerNorm and tanh (SAC-AE, Yarats et al.
    2019). Strides (2, 2, 2, 1) cost about a quarter as much at 64 x 64: the CPU benchmark's choice."""

    def __init__(self, image_shape: tuple[int, int, int], feature_dim: int = 50,
                 strides: tuple[int, ...] = DRQ_STRIDES):
        super().__init__()
        h, w, c = image_shape
        layers: list[nn.Module] = []
        for i, stride in enumerate(strides):
            layers += [nn.Conv2d(c if i == 0 else 32, 32, 3, stride=stride), nn.ReLU()]
        self.convs = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            try:
                flat = self.convs(torch.zeros(1, c, h, w)).shape[-1]
            except RuntimeError as e:  # torch: "output size is too small"
                raise ValueError(f"conv_strides {list(strides)}: the image ({h} x {w}) shrinks to nothing; give "
                                 f"fewer layers or smaller strides, or a larger image_size") from e
        self.head = nn.Sequential(nn.Linear(flat, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())

    def forward(self, images: torch.Tensor, augment_pad: int = 0) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        if augment_pad:
            x = random_shift(x, augment_pad)
        return self.head(self.convs(x))


STD_FLOOR = 1e-2  # a key nearly constant in the demonstrations is not blown up where it varies online


class ObservationEncoder(nn.Module):
    """A dict of observation tensors -> one feature vector: state keys (in order) concatenated, then each
    camera's conv features. ``normalize``: the state part is standardized by ``state_mean``/``state_std``
    (buffers, saved with the weights; identity until :meth:`set_state_statistics`)."""

    def __init__(self, state_dims: dict[str, int], camera_shapes: dict[str, tuple[int, int, int]],
                 feature_dim: int = 50, augment_pad: int = 4, normalize: bool = False,
                 conv_strides: tuple[int, ...] = DRQ_STRIDES):
        super().__init__()
        self.state_keys = tuple(state_dims)
        self.normalize = normalize
        if normalize:
            self.register_buffer("state_mean", torch.zeros(sum(state_dims.values())))
            self.register_buffer("state_std", torch.ones(sum(state_dims.values())))
        self.cameras = nn.ModuleDict({name: ConvEncoder(shape, feature_dim, conv_strides)
                                      for name, shape in camera_shapes.items()})
        self.augment_pad = augment_pad
        self.out_dim = sum(state_dims.values()) + feature_dim * len(camera_shapes)

    def forward(self, obs: dict[str, torch.Tensor], augment: bool = False) -> torch.Tensor:
        parts = [obs[k].float().flatten(1) for k in self.state_keys]
        if self.normalize and parts:
            parts = [(torch.cat(parts, dim=-1) - self.state_mean) / self.state_std]
        pad = self.augment_pad if augment else 0
        parts += [encoder(obs[name], pad) for name, encoder in self.cameras.items()]
        return torch.cat(parts, dim=-1)

    @torch.no_grad()
    def set_state_statistics(self, stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """``stats``: per state key, its (mean, std) over the flattened values."""
        if not self.normalize:
            raise ValueError("set_state_statistics: this encoder was built with normalize=False")
        missing = [k for k in self.state_keys if k not in stats]
        if missing:
            raise ValueError(f"set_state_statistics: no statistics for {missing}; expected {list(self.state_keys)}")
        mean, std = (torch.as_tensor(np.concatenate([np.ravel(stats[k][i]) for k in self.state_keys]),
                                     dtype=torch.float32) for i in (0, 1))
        self.state_mean.copy_(mean)
        self.state_std.copy_(std.clamp(min=STD_FLOOR))
