"""A learned reward: a small conv net saying from one camera frame whether the task is done (HIL-SERL's
reward classifier), trained from the success labels in a store and checked on held-out episodes.

    classifier, report = train_classifier("data/pp.zarr", camera="front", out="runs/reward/x")
    classifier = load_classifier("runs/reward/x")
    classifier.probability(obs)            # obs[camera]: H x W x 3 uint8 -> P(success)

Labels: a frame is a success when its row's reward reaches ``reward_at`` (0.5: the sparse rewards of the
twin's ``reward_type=sparse`` and of the operator's live success label), or when it is among the last
``success_tail`` rows of an episode whose info says ``success`` (a hardware episode labelled by the
operator has one rewarded row; a longer tail gives the classifier more positives, HIL-SERL's practice of
recording a few success frames per episode). Every other frame is a failure.

Held-out episodes (``holdout`` of them, drawn with ``seed`` among the episodes with success frames and
among those without alike) are never trained on; precision and recall
at ``threshold`` are measured on their frames. The loss weighs positives by negatives / positives (success
frames are few). The frames are resized to ``size`` x ``size`` (nearest: no new dependency), scaled to
[0, 1]. Saved as ``reward_classifier.safetensors`` (the weights) and ``reward_classifier.json`` (camera,
size, threshold, the store and the held-out metrics) in ``out``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHTS, META = "reward_classifier.safetensors", "reward_classifier.json"


class FrameClassifier(nn.Module):
    """Three strided convolutions, global average pooling, one logit."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width // 2, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, 3, H, W] in [0, 1] -> logits [B]."""
        return self.net(frames).squeeze(-1)


def prepare(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, size, size] in [0, 1] (nearest resize)."""
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    rows = np.linspace(0, h - 1, size).round().astype(int)
    cols = np.linspace(0, w - 1, size).round().astype(int)
    small = frames[:, rows][:, :, cols]
    return torch.from_numpy(np.ascontiguousarray(small)).permute(0, 3, 1, 2).float() / 255.0


@dataclass
class RewardClassifier:
    net: FrameClassifier
    camera: str
    size: int
    threshold: float
    meta: dict

    @torch.no_grad()
    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        self.net.eval()
        return torch.sigmoid(self.net(prepare(frames, self.size))).numpy()

    def probability(self, obs: dict) -> float:
        """P(success) of one observation (its ``camera`` frame): the recorder's ``reward_fn``."""
        if self.camera not in obs:
            raise KeyError(f"reward classifier: reads camera {self.camera!r}, the observation has {sorted(obs)}; "
                           f"record with cameras=[{self.camera}]")
        return float(self.probabilities(np.asarray(obs[self.camera])[None])[0])

    def save(self, out: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, out / WEIGHTS)
        (out / META).write_text(json.dumps({**self.meta, "camera": self.camera, "size": self.size,
                                            "threshold": self.threshold, "width": self.width}, indent=2))
        return out

    @property
    def width(self) -> int:
        return self.net.net[2].out_channels


def load_classifier(path: str | os.PathLike) -> RewardClassifier:
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / META).exists() or not (path / WEIGHTS).exists():
        raise FileNotFoundError(f"reward_classifier={path}: expected {META} and {WEIGHTS} there "
                                "(written by `robot-rl train-reward`)")
    meta = json.loads((path / META).read_text())
    net = FrameClassifier(meta["width"])
    net.load_state_dict(load_file(path / WEIGHTS))
    return RewardClassifier(net, meta["camera"], meta["size"], meta["threshold"], meta)


def frame_labels(reader, reward_at: float = 0.5, success_tail: int = 1) -> np.ndarray:
    """One bool per row of ``reader``: the module docstring's success labels."""
    labels = np.asarray(reader.column("reward")) >= reward_at
    ends = np.asarray(reader.episode_ends)
    for i, end in enumerate(ends):
        if reader.episode_info(i).get("success") and success_tail > 0:
            start = ends[i - 1] if i else 0
            labels[max(start, end - success_tail):end] = True
    return labels


def precision_recall(predicted: np.ndarray, truth: np.ndarray) -> dict:
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    hits = int((predicted & truth).sum())
    return {"precision": hits / max(int(predicted.sum()), 1), "recall": hits / max(int(truth.sum()), 1),
            "positives": int(truth.sum()), "frames": int(truth.size),
            "accuracy": float((predicted == truth).mean()) if truth.size else 0.0}


def split_episodes(episodes: int, holdout: float, seed: int, strata=None) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) episode indices; at least one of each. ``strata`` (one label per episode, e.g. its
    success): each group is split on its own, so both sides see successes when there are two or more."""
    if episodes < 2:
        raise ValueError(f"the store has {episodes} episodes: the classifier needs at least 2 "
                         "(one to train on, one held out)")
    rng = np.random.default_rng(seed)
    strata = np.zeros(episodes, dtype=int) if strata is None else np.asarray(strata)
    train, held = [], []
    for group in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == group))
        count = int(np.clip(round(holdout * len(members)), 1 if len(members) > 1 else 0, len(members) - 1))
        held += members[:count].tolist()
        train += members[count:].tolist()
    if not held:  # one episode per group: hold out one episode anyway
        held, train = train[:1], train[1:]
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(held, dtype=np.int64))


def rows_of(reader, episodes: np.ndarray) -> np.ndarray:
    ends = np.asarray(reader.episode_ends)
    starts = np.concatenate([[0], ends[:-1]])
    return np.concatenate([np.arange(starts[e], ends[e]) for e in episodes]).astype(np.int64)


def train_classifier(store, *, camera: str, out=None, size: int = 64, width: int = 32, epochs: int = 20,
                     batch_size: int = 64, lr: float = 1e-3, holdout: float = 0.25, threshold: float = 0.5,
                     reward_at: float = 0.5, success_tail: int = 1, seed: int = 0,
                     log=lambda line: None) -> tuple[RewardClassifier, dict]:
    """Train on ``store``'s frames of ``camera``; (classifier, report with held-out precision/recall)."""
    from robot_rl.datasets import TrajectoryReader

    reader = TrajectoryReader(store)
    if camera not in reader.spec.cameras:
        raise ValueError(f"camera={camera!r}: the store {store} has cameras {sorted(reader.spec.cameras)}; "
                         "give one of those (or record with it)")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold={threshold}: expected a probability in (0, 1)")
    labels = frame_labels(reader, reward_at, success_tail)
    ends = np.asarray(reader.episode_ends)
    has_success = [bool(labels[(ends[i - 1] if i else 0):ends[i]].any()) for i in range(reader.num_episodes)]
    train_eps, held_eps = split_episodes(reader.num_episodes, holdout, seed, strata=has_success)
    train_rows, held_rows = rows_of(reader, train_eps), rows_of(reader, held_eps)
    if not labels[train_rows].any():
        raise ValueError(f"store {store}: no success frame in the training episodes (reward >= {reward_at}, or the "
                         f"last {success_tail} rows of a successful episode); record successes first")
    torch.manual_seed(seed)
    frames = torch.cat([prepare(reader.gather(camera, rows), size)  # resized as read: the store may be large
                        for rows in np.array_split(np.arange(reader.num_steps), max(1, reader.num_steps // 512))])
    targets = torch.from_numpy(labels.astype(np.float32))
    net = FrameClassifier(width)
    positives = float(labels[train_rows].sum())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(train_rows) - positives) / positives))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        net.train()
        total = 0.0
        for batch in np.array_split(rng.permutation(train_rows), max(1, len(train_rows) // batch_size)):
            loss = loss_fn(net(frames[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(train_rows):.4f}")
    classifier = RewardClassifier(net, camera, size, threshold, {})
    with torch.no_grad():
        net.eval()
        held_p = torch.sigmoid(net(frames[held_rows])).numpy()
        train_p = torch.sigmoid(net(frames[train_rows])).numpy()
    report = {"store": str(store), "camera": camera, "episodes": {"train": train_eps.tolist(), "held_out": held_eps.tolist()},
              "held_out": precision_recall(held_p >= threshold, labels[held_rows]),
              "train": precision_recall(train_p >= threshold, labels[train_rows]),
              "settings": {"size": size, "width": width, "epochs": epochs, "lr": lr, "reward_at": reward_at,
                           "success_tail": success_tail, "seed": seed}}
    classifier.meta = report
    if out is not None:
        classifier.save(out)
    return classifier, report
