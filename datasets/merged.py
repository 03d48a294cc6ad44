"""Several stores read as one :class:`~robot_rl.datasets.source.StepSource`.

A store has one writer (robot_rl.datasets.lock), so N processes that record at once write N stores; a
consumer that wants all their episodes reads them through a ``MergedReader``. Episodes are laid end to
end in the order this reader first saw them committed, and a refresh only appends: the rows a sampler
has indexed never move. New stores may appear while it runs (an actor that starts later): ``urls`` is
called at every refresh, and a store still being created is picked up at a later one.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

from robot_rl.datasets.errors import NotAStoreError
from robot_rl.datasets.reader import TrajectoryReader, _grown
from robot_rl.datasets.spec import EmbodimentSpec


class MergedReader:
    def __init__(self, urls: Callable[[], Iterable[str | os.PathLike]],
                 on_open: Callable[[TrajectoryReader], None] | None = None):
        """``urls()``: the stores to read now (called at every refresh); ``on_open(reader)``: a check
        of each store when first opened (e.g. its spec), which raises to refuse it."""
        self._urls, self._on_open = urls, on_open
        self.readers: list[TrajectoryReader] = []
        self._taken: list[int] = []  # episodes of each reader laid out so far
        self.spec: EmbodimentSpec | None = None
        self.obs_keys: tuple[str, ...] = ()
        self._buffers: dict[str, np.ndarray] = {}
        self._owner = np.zeros(0, np.int32)   # per merged row: its reader
        self._row = np.zeros(0, np.int64)     # per merged row: its row in that reader
        self._episodes: list[tuple[int, int]] = []  # per merged episode: (reader, its episode index there)
        self._laid_out = 0  # merged rows so far (episode_ends catches up at the end of each refresh)
        self.episode_ends = np.zeros(0, np.int64)
        self.refresh()

    @property
    def url(self) -> str:
        return ", ".join(r.url for r in self.readers) or "(no store yet)"

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def num_steps(self) -> int:
        return int(self.episode_ends[-1]) if len(self.episode_ends) else 0

    def refresh(self) -> int:
        """Open stores that appeared, then append every episode committed since the last call."""
        self._open_new()
        ends = [self.episode_ends]
        for owner, reader in enumerate(self.readers):
            reader.refresh()
            for episode in range(self._taken[owner], reader.num_episodes):
                start = int(reader.episode_ends[episode - 1]) if episode else 0
                ends.append(np.array([self._append(owner, reader, start, int(reader.episode_ends[episode]))]))
                self._episodes.append((owner, episode))
            self._taken[owner] = reader.num_episodes
        arrived = len(ends) - 1
        if arrived:
            self.episode_ends = np.concatenate(ends)
        return arrived

    def _open_new(self) -> None:
        known = {os.fspath(r.url) for r in self.readers}
        for url in self._urls():
            if os.fspath(url) in known:
                continue
            try:
                reader = TrajectoryReader(url)
            except NotAStoreError:  # its writer is still creating it
                continue
            if self._on_open is not None:
                self._on_open(reader)
            if self.spec is None:
                self.spec, self.obs_keys = reader.spec, reader.obs_keys
                self._buffers = {k: np.empty((0, *v.shape), v.dtype) for k, v in reader.spec.keys().items()
                                 if k not in reader.spec.cameras}
            self.readers.append(reader)
            self._taken.append(0)

    def _append(self, owner: int, reader: TrajectoryReader, start: int, stop: int) -> int:
        """Lay rows ``start:stop`` of ``reader`` after the merged rows; returns the new end."""
        begin = self._laid_out
        end = begin + stop - start
        for key in self._buffers:
            self._buffers[key] = _grown(self._buffers[key], begin, end)
            self._buffers[key][begin:end] = reader.column(key)[start:stop]
        self._owner = _grown(self._owner, begin, end)
        self._row = _grown(self._row, begin, end)
        self._owner[begin:end] = owner
        self._row[begin:end] = np.arange(start, stop)
        self._laid_out = end
        return end

    def column(self, key: str) -> np.ndarray:
        if key not in self._buffers:
            raise KeyError(f"{key!r} is not a low-dimensional key of these stores: {sorted(self._buffers)}")
        return self._buffers[key][: self.num_steps]

    def gather(self, key: str, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if key in self._buffers:
            return self.column(key)[indices]
        owners = self._owner[indices]
        out = None
        for owner in np.unique(owners):
            picked = owners == owner
            rows = self.readers[owner].gather(key, self._row[indices[picked]])
            if out is None:
                out = np.empty((len(indices), *rows.shape[1:]), rows.dtype)
            out[picked] = rows
        return out if out is not None else np.empty((0,), np.uint8)

    def episode_info(self, index: int) -> dict:
        owner, episode = self._episodes[index]
        return self.readers[owner].episode_info(episode)

    def store_of(self, index: int) -> str:
        """The URL of the store that holds merged episode ``index``."""
        return self.readers[self._episodes[index][0]].url
