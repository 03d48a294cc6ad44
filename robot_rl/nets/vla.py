"""A small vision-language-action policy: camera images, proprioception and the language instruction as
tokens, a transformer backbone, and h learned action queries read out as a chunk of h actions.

    tokens = [instruction] + [state] + [camera patches ...] + [action query 1..h]
    chunk  = tanh(Linear(backbone(tokens)[action queries]))                      # [B, h, A] in [-1, 1]

The action queries come last, so a causal (decoder-only) backbone still lets them read every other token.

The backbone is pluggable (:class:`Backbone`: ``width`` and ``forward(tokens [B, T, width]) -> same``):
``builtin`` is a pre-norm ``nn.TransformerEncoder`` that trains on a CPU; ``hf:<folder>`` loads a
Hugging Face model a user has on disk (``AutoModel.from_pretrained(folder, local_files_only=True)``:
nothing is downloaded) and runs it on ``inputs_embeds``, between a Linear in and a Linear out. A VLM's
language model (its ``language_model`` or ``text_model``) is used when the folder holds a VLM. A
LeRobot policy plugs in the same way: wrap its transformer in a ``Backbone``.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from robot_rl.nets.encoders import random_shift
from robot_rl.nets.text import InstructionEncoder


class Backbone(nn.Module):
    """Tokens [B, T, width] -> contextualized tokens [B, T, width]."""

    width: int


class TransformerBackbone(Backbone):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.width = width
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.net = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(tokens))


class HFBackbone(Backbone):
    """A Hugging Face transformer on ``inputs_embeds``; every parameter trains (full fine-tuning)."""

    def __init__(self, model: nn.Module, width: int):
        super().__init__()
        self.width = width
        self.model = getattr(model, "language_model", None) or getattr(model, "text_model", None) or model
        hidden = self.model.config.hidden_size
        self.inp, self.out = nn.Linear(width, hidden), nn.Linear(hidden, width)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, width: int) -> HFBackbone:
        try:
            from transformers import AutoModel
        except ImportError as err:
            raise ImportError("backbone=hf:<folder> needs the `vla` extra: pip install 'robot-rl[vla]'") from err
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise FileNotFoundError(f"backbone=hf:{folder}: no config.json there; give a folder written by "
                                    "save_pretrained() (weights are never downloaded at run time)")
        return cls(AutoModel.from_pretrained(folder, local_files_only=True), width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.model(inputs_embeds=self.inp(tokens)).last_hidden_state
        return self.out(hidden)


def make_backbone(spec: str, width: int, layers: int, heads: int) -> Backbone:
    """``builtin`` or ``hf:<local folder>``."""
    if spec == "builtin":
        return TransformerBackbone(width, layers, heads)
    if spec.startswith("hf:") and len(spec) > 3:
        return HFBackbone.from_pretrained(spec[3:], width)
    raise ValueError(f"backbone: expected 'builtin' or 'hf:<folder with a saved Hugging Face model>', found {spec!r}")


class ImageTokenizer(nn.Module):
    """uint8 [B, H, W, 3] -> [B, grid * grid, width]: a ViT-style patchify stem (4x4 patches, then 2x2),
    light enough to train on a CPU, average-pooled to a grid x grid map of patch tokens."""

    def __init__(self, width: int, grid: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=4), nn.ReLU(),
            nn.Conv2d(32, width, 2, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(grid), nn.Flatten(2))

    def forward(self, images: torch.Tensor, augment_pad: int = 0) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        if augment_pad:
            x = random_shift(x, augment_pad)
        return self.stem(x).transpose(1, 2)


class RunningNorm(nn.Module):
    """Standardizes features by the mean and std of every batch passed to ``update`` (the training data),
    kept as buffers so checkpoints carry them: joint angles (rad) and positions (m) differ in scale and a
    few millimetres matter for a grasp."""

    def __init__(self, size: int, min_std: float = 1e-3):
        super().__init__()
        self.min_std = min_std
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch [B, size] into the running moments (Chan et al.'s parallel update)."""
        n, batch_mean, batch_var = x.shape[0], x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta ** 2 * self.count * n / total) / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.var.sqrt().clamp(min=self.min_std)


class CriticObservationEncoder(nn.Module):
    """The critic's view: the policy's standardized state, plus per camera the policy's patch tokens
    (detached: no second conv net to run on a CPU) through a trained Linear, LayerNorm and tanh (SAC-AE's
    head)."""

    def __init__(self, state_dims: dict[str, int], cameras: dict[str, tuple[int, int, int]], width: int,
                 image_grid: int, feature_dim: int):
        super().__init__()
        self.state_keys = tuple(state_dims)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Flatten(), nn.Linear(width * image_grid ** 2, feature_dim), nn.LayerNorm(feature_dim),
                          nn.Tanh()) for _ in cameras)
        self.out_dim = sum(state_dims.values()) + feature_dim * len(cameras)

    def forward(self, state: torch.Tensor | None, image_tokens: list[torch.Tensor]) -> torch.Tensor:
        parts = [] if state is None else [state]
        parts += [head(tokens.detach()) for head, tokens in zip(self.heads, image_tokens)]
        return torch.cat(parts, dim=-1)


class VLAPolicy(nn.Module):
    """obs dict -> action chunk [B, h, A] in [-1, 1]."""

    def __init__(self, state_dims: dict[str, int], cameras: dict[str, tuple[int, int, int]], action_dim: int,
                 chunk: int, instruction: str, *, width: int = 64, layers: int = 2, heads: int = 4,
                 image_grid: int = 4, text_encoder: str = "auto", backbone: str = "builtin"):
        super().__init__()
        self.state_keys, self.chunk, self.action_dim = tuple(state_dims), chunk, action_dim
        self.instruction = InstructionEncoder(instruction, width, text_encoder)
        self.state_norm = RunningNorm(sum(state_dims.values())) if state_dims else None
        self.state = nn.Linear(sum(state_dims.values()), width) if state_dims else None
        self.cameras = nn.ModuleDict({name: ImageTokenizer(width, image_grid) for name in cameras})
        n_tokens = 1 + (self.state is not None) + len(cameras) * image_grid ** 2 + chunk
        self.position = nn.Parameter(torch.randn(n_tokens, width) * 0.02)  # learned, one per token slot
        self.queries = nn.Parameter(torch.randn(chunk, width) * 0.02)
        self.backbone = make_backbone(backbone, width, layers, heads)
        self.head = nn.Linear(width, action_dim)

    def state_input(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The state keys concatenated and standardized (None without state keys)."""
        if self.state_norm is None:
            return None
        return self.state_norm(torch.cat([obs[k].float().flatten(1) for k in self.state_keys], -1))

    def observe(self, obs: dict[str, torch.Tensor]) -> None:
        """Count a training batch's state in the normalization statistics."""
        if self.state_norm is not None:
            self.state_norm.update(torch.cat([obs[k].float().flatten(1) for k in self.state_keys], -1))

    def image_tokens(self, obs: dict[str, torch.Tensor], augment_pad: int = 0) -> list[torch.Tensor]:
        """Each camera's patch tokens [B, grid^2, width] (the critic reads them too, detached)."""
        return [tokenizer(obs[name], augment_pad) for name, tokenizer in self.cameras.items()]

    def forward(self, obs: dict[str, torch.Tensor], augment_pad: int = 0,
                image_tokens: list[torch.Tensor] | None = None) -> torch.Tensor:
        b = next(iter(obs.values())).shape[0]
        tokens = [self.instruction(b)[:, None]]
        if self.state is not None:
            tokens.append(self.state(self.state_input(obs))[:, None])
        tokens += self.image_tokens(obs, augment_pad) if image_tokens is None else image_tokens
        tokens.append(self.queries.expand(b, -1, -1))
        x = self.backbone(torch.cat(tokens, 1) + self.position)
        return torch.tanh(self.head(x[:, -self.chunk:]))
