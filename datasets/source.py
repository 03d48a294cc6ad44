"""The read-side contract every sampler is written against.

A ``StepSource`` is a set of committed episodes laid end to end along time, the layout of the
store's ``data/`` group: step ``t`` of the whole source belongs to episode ``i`` when
``episode_ends[i-1] <= t < episode_ends[i]``. The on-disk store reader
(:class:`robot_rl.datasets.store.TrajectoryReader`) and :class:`InMemorySource` both satisfy it, so
samplers never know where the bytes live.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np


class StepSource(Protocol):
    episode_ends: np.ndarray
    """int64, cumulative end index of every committed episode (exclusive)."""

    obs_keys: tuple[str, ...]
    """Observation keys, in spec order (cameras included)."""

    def column(self, key: str) -> np.ndarray:
        """The whole committed column of a low-dimensional key, held in memory
        (``action``, ``reward``, ``terminated``, ``truncated``, ``timestamp``, proprioception)."""

    def gather(self, key: str, indices: np.ndarray) -> np.ndarray:
        """Rows ``indices`` (int64, any order, repeats allowed) of any key, images included."""

    def refresh(self) -> int:
        """Pick up newly committed episodes; returns how many arrived."""


class InMemorySource:
    """A ``StepSource`` over numpy arrays: the in-RAM store, and the fixture of sampler tests."""

    def __init__(self, episode_ends: np.ndarray, data: Mapping[str, np.ndarray],
                 obs_keys: tuple[str, ...]):
        self.episode_ends = np.asarray(episode_ends, dtype=np.int64)
        self.data = dict(data)
        self.obs_keys = tuple(obs_keys)
        n = int(self.episode_ends[-1]) if len(self.episode_ends) else 0
        for key, values in self.data.items():
            if len(values) < n:
                raise ValueError(f"column {key!r} has {len(values)} rows but episodes end at {n}")

    def column(self, key: str) -> np.ndarray:
        return self.data[key]

    def gather(self, key: str, indices: np.ndarray) -> np.ndarray:
        return self.data[key][indices]

    def refresh(self) -> int:
        return 0
