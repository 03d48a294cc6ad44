"""Reading a store: committed episodes only, with ``refresh()`` to tail a store being written."""
from __future__ import annotations

import json
import os

import numpy as np

from robot_rl.datasets.errors import CorruptChunkError
from robot_rl.datasets.frames import FrameReader
from robot_rl.datasets.layout import local_path, open_root, read_commit_record
from robot_rl.datasets.source import InMemorySource
from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.datasets.stats import RunningStats


class TrajectoryReader:
    """A :class:`~robot_rl.datasets.source.StepSource` over a store on disk or at a URL.

    Low-dimensional keys are held in memory (they are small: a million steps of 14-D state is
    56 MB); camera frames stay in the store and are read on demand, shard by shard
    (:mod:`robot_rl.datasets.frames`), so stores larger than RAM work. Any number of readers may
    run beside one writer, in other processes.
    """

    def __init__(self, url: str | os.PathLike):
        self.url = os.fspath(url)
        self.root = open_root(url, "r")
        self.spec = EmbodimentSpec.from_dict(self.root.attrs["spec"])
        self.obs_keys = self.spec.obs_keys
        keys = self.spec.keys()
        self._lowdim = {k: v for k, v in keys.items() if k not in self.spec.cameras}
        self._buffers = {k: np.empty((0, *v.shape), v.dtype) for k, v in self._lowdim.items()}
        self._frames = {
            name: FrameReader(self.root[f"data/{name}"], cam.codec, local_path(url))
            for name, cam in self.spec.cameras.items()
        }
        self.episode_ends = np.zeros(0, np.int64)
        self._info: list[dict] = []
        self.refresh()

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def num_steps(self) -> int:
        return int(self.episode_ends[-1]) if len(self.episode_ends) else 0

    def refresh(self) -> int:
        """Pick up episodes committed since the last call; returns how many arrived."""
        record = read_commit_record(self.root, self.spec.keys())
        if len(record.ends) <= self.num_episodes:
            return 0
        start, stop = self.num_steps, record.steps
        for key, buffer in self._buffers.items():
            self._buffers[key] = _grown(buffer, start, stop)
            try:
                self._buffers[key][start:stop] = self.root[f"data/{key}"][start:stop]
            except Exception as e:  # the codec's own error says little about where
                raise CorruptChunkError(
                    f"data/{key} rows {start}..{stop - 1} do not decode ({type(e).__name__}: {e}); "
                    f"run `robot-rl data validate {self.url}` to list every damaged episode") from e
        arrived = len(record.ends) - self.num_episodes
        self.episode_ends = record.ends
        return arrived

    def column(self, key: str) -> np.ndarray:
        if key not in self._buffers:
            raise KeyError(f"{key!r} is not a low-dimensional key of this store: {sorted(self._buffers)}")
        return self._buffers[key][: self.num_steps]

    def gather(self, key: str, indices: np.ndarray) -> np.ndarray:
        if key in self._frames:
            return self._frames[key].read(indices)
        return self.column(key)[indices]

    def episode_info(self, index: int) -> dict:
        if len(self._info) < self.num_episodes:
            docs = self.root["meta/episode_info"][len(self._info): self.num_episodes]
            self._info.extend(json.loads(str(doc)) for doc in docs)
        return self._info[index]

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """Every key of one committed episode, images included."""
        start = int(self.episode_ends[index - 1]) if index > 0 else 0
        steps = np.arange(start, int(self.episode_ends[index]))
        return {key: self.gather(key, steps) for key in self.spec.keys()}

    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Normalization statistics per low-dimensional key, as of the last commit."""
        meta = self.root["meta"]
        return {
            key: RunningStats.from_attrs(d, meta[f"stats_sample/{key}"]).summary()
            for key, d in meta.attrs.get("stats", {}).items()
        }

    def to_memory(self) -> InMemorySource:
        """Load every committed step, images included, into RAM (the fastest source to sample)."""
        everything = np.arange(self.num_steps)
        data = {key: self.column(key) for key in self._buffers}
        data.update({key: frames.read(everything) for key, frames in self._frames.items()})
        return InMemorySource(self.episode_ends, data, self.obs_keys)


def _grown(buffer: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``buffer`` with room for rows up to ``stop``, doubling so tailing a store stays linear."""
    if stop <= len(buffer):
        return buffer
    grown = np.empty((max(stop, 2 * len(buffer)), *buffer.shape[1:]), buffer.dtype)
    grown[:start] = buffer[:start]
    return grown
