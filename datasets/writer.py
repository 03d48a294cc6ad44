"""Writing a store: one ``StoreWriter`` per store (locked), one ``EpisodeWriter`` per episode.

    writer = StoreWriter.create("runs/teleop.zarr", spec)
    episode = writer.new_episode(instruction="put the cube in the bowl", source="teleop")
    for frame in robot_loop():
        episode.add(frame)            # checked against the spec, flushed in blocks in the background
    episode.commit(success=True)      # the episode's end is written last: now it exists
    writer.close()

Memory stays bounded whatever the episode length: frames are copied into fixed blocks of about
``BLOCK_BYTES`` that a background thread writes while the next block fills (at most two blocks
wait, after which ``add`` blocks). The flush policy: a block is handed over when full, and the
background thread hands over a partial one at the latest ``FLUSH_INTERVAL_S`` after its first frame
arrived, whether or not more frames come. Every written block ends with the ``flushed`` mark, so a
frame that reached ``add`` more than ``FLUSH_INTERVAL_S`` (plus one block's write) before a crash of
this process is on disk and marked, and ``robot-rl data recover --salvage`` keeps it. A flush costs one
rewrite of the open low-dimensional chunk per key and the new image chunks; it happens at most once per
interval beyond the full blocks (benchmarks/store_bench.py measures it). The episode exists only once
committed.
"""
from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from robot_rl.datasets.codecs import image_array_options, lowdim_array_options
from robot_rl.datasets.errors import SpecMismatchError, StoreError, UncommittedTailError
from robot_rl.datasets.layout import (
    COMMIT_CHUNK,
    FORMAT_ATTR,
    FORMAT_VERSION,
    LOWDIM_CHUNK_ROWS,
    local_path,
    open_root,
    read_commit_record,
    store_exists,
    zarr_store,
)
from robot_rl.datasets.lock import WriterLock
from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.datasets.stats import SAMPLE_ROWS, RunningStats

BLOCK_BYTES = 32 << 20
MAX_BLOCK_ROWS = 256
FLUSH_INTERVAL_S = 1.0  # a crash loses at most this much (plus one block's write) of the open episode
MAX_WAITING_BLOCKS = 2
SOURCES = ("teleop", "scripted", "policy", "intervention")
_ARRAY_CONFIG = {"write_empty_chunks": True}  # every committed frame has its chunk: a missing one is damage


def create_store(url: str | os.PathLike, spec: EmbodimentSpec, *, overwrite: bool = False) -> None:
    """Lay out an empty store for ``spec``. Refuses to replace an existing one unless ``overwrite``."""
    path = local_path(url)
    if path is not None and path.exists() and any(path.iterdir()):
        if not overwrite:
            raise StoreError(f"{url} already exists: open it to append, or pass overwrite=True to replace it")
        shutil.rmtree(path)
    root = zarr.open_group(zarr_store(url, read_only=False), mode="w" if overwrite else "w-")
    data, meta = root.create_group("data"), root.create_group("meta")
    for key, key_spec in spec.keys().items():
        camera = spec.cameras.get(key)
        options = (image_array_options(camera.codec, key_spec.shape, camera.jpeg_quality) if camera
                   else lowdim_array_options(LOWDIM_CHUNK_ROWS, key_spec.shape))
        data.create_array(key, shape=(0, *key_spec.shape), dtype=key_spec.dtype, fill_value=0, **options)
    meta.create_array("episode_ends", shape=(0,), chunks=(COMMIT_CHUNK,), dtype="int64", fill_value=0)
    meta.create_array("episode_info", shape=(0,), chunks=(COMMIT_CHUNK,), dtype=str)
    for key in _stat_keys(spec):
        shape = (SAMPLE_ROWS, *spec.keys()[key].shape)
        meta.create_array(f"stats_sample/{key}", shape=shape, chunks=shape, dtype="float32", fill_value=0)
    data.attrs.update({"flushed": 0, "pending_episode": None})
    # The format attribute goes last: a half-created folder is never mistaken for a store.
    root.attrs.update({"spec": spec.to_dict(), FORMAT_ATTR: FORMAT_VERSION})


def _stat_keys(spec: EmbodimentSpec) -> list[str]:
    return [*spec.state, "action", "reward"]


class StoreWriter:
    """The single writer of a store. ``on_tail`` says what to do with rows a crashed writer left
    after the last commit: ``"error"`` (default: ask the user to run ``robot-rl data recover``),
    ``"salvage"`` (commit them as an episode marked truncated and recovered) or ``"drop"``.
    ``durable`` (local stores) flushes the disk cache around each commit, so committed episodes
    survive a power cut as well as a killed process; it costs a few milliseconds a commit."""

    @classmethod
    def create(cls, url, spec: EmbodimentSpec, *, overwrite: bool = False, durable: bool = True) -> StoreWriter:
        create_store(url, spec, overwrite=overwrite)
        return cls(url, durable=durable)

    @classmethod
    def open_or_create(cls, url, spec: EmbodimentSpec, *, overwrite: bool = False, durable: bool = True,
                       on_tail: str = "error") -> StoreWriter:
        """Append to the store at ``url`` if it exists (its spec must equal ``spec``), else create it."""
        if overwrite or not store_exists(url):
            return cls.create(url, spec, overwrite=overwrite, durable=durable)
        writer = cls(url, durable=durable, on_tail=on_tail)
        found, expected = json.loads(json.dumps(writer.spec.to_dict())), json.loads(json.dumps(spec.to_dict()))
        if found != expected:
            writer.close()
            changed = sorted(k for k in {*found, *expected} if found.get(k) != expected.get(k))
            raise SpecMismatchError(
                f"{url} holds episodes of a different embodiment spec (differs in {changed}): "
                f"record into a new store, or pass overwrite=True to replace it")
        return writer

    def __init__(self, url: str | os.PathLike, *, on_tail: str = "error", durable: bool = True):
        self.url = os.fspath(url)
        self.durable = durable and local_path(url) is not None
        self.root = open_root(url, "a")
        self._lock = WriterLock(self.url, self.root.store).acquire()
        try:
            self.spec = EmbodimentSpec.from_dict(self.root.attrs["spec"])
            self._data = self.root["data"]
            self._meta = self.root["meta"]
            self.arrays = {k: self._data[k].with_config(_ARRAY_CONFIG) for k in self.spec.keys()}
            self._stat_keys = _stat_keys(self.spec)
            self.episode_ends = self._settle_commit_record()
            self._load_stats()
            self._handle_tail(on_tail)
        except BaseException:
            self._lock.release()
            raise
        self._episode: EpisodeWriter | None = None
        self._flusher = _Flusher(self)

    # -- state -------------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def num_steps(self) -> int:
        return int(self.episode_ends[-1]) if self.episode_ends else 0

    def _settle_commit_record(self) -> list[int]:
        record = read_commit_record(self.root, self.spec.keys())
        n = len(record.ends)
        if n < record.entries:  # an interrupted commit left an entry that was never valid
            self._meta["episode_ends"].resize((n,))
        info = self._meta["episode_info"]
        if info.shape[0] != n:
            info.resize((n,))
        return record.ends.tolist()

    def tail_rows(self) -> int:
        """Rows written after the last commit (by a writer that crashed mid-episode)."""
        return max(a.shape[0] for a in self.arrays.values()) - self.num_steps

    def _handle_tail(self, on_tail: str) -> None:
        if on_tail not in ("error", "salvage", "drop"):
            raise ValueError(f"on_tail must be 'error', 'salvage' or 'drop', found {on_tail!r}")
        tail = self.tail_rows()
        if tail == 0:
            return
        if on_tail == "error":
            raise UncommittedTailError(
                f"{self.url} has {tail} uncommitted steps after its last episode (a recorder stopped "
                f"mid-episode); keep them as a truncated episode with `robot-rl data recover {self.url} "
                f"--salvage`, or drop them with `--drop`. Committed episodes are intact.")
        if on_tail == "salvage":
            self._salvage_tail()
        self._truncate_to_committed()

    def salvageable_rows(self) -> int:
        """Tail rows a finished flush marked as written for every key (those ``salvage`` keeps); rows
        past the mark were being written when the writer stopped, so they may be incomplete."""
        usable = min(min(a.shape[0] for a in self.arrays.values()), int(self._data.attrs.get("flushed", 0)))
        return max(usable - self.num_steps, 0)

    def _salvage_tail(self) -> None:
        if self.salvageable_rows() == 0:
            return
        usable = self.num_steps + self.salvageable_rows()
        start = self.num_steps
        last = usable - 1
        if not (self.arrays["terminated"][last] or self.arrays["truncated"][last]):
            self.arrays["truncated"][last] = True
        info = {**(self._data.attrs.get("pending_episode") or {}), "recovered": True}
        self._write_commit(usable, info)
        self._update_stats(self._stats_of_rows(start, usable))

    def _truncate_to_committed(self) -> None:
        for array in self.arrays.values():
            if array.shape[0] != self.num_steps:
                array.resize((self.num_steps, *array.shape[1:]))
        self._data.attrs.update({"flushed": self.num_steps, "pending_episode": None})

    # -- statistics ----------------------------------------------------------------------------
    def _load_stats(self) -> None:
        saved = self._meta.attrs.get("stats", {})
        self._stats = {
            key: RunningStats.from_attrs(saved[key], self._meta[f"stats_sample/{key}"]) if key in saved
            else RunningStats.empty(self.spec.keys()[key].shape)
            for key in self._stat_keys
        }
        counted = int(self._meta.attrs.get("stats_episodes", 0)) if saved else 0
        if counted < self.num_episodes:  # a crash between a commit and its statistics update
            start = self.episode_ends[counted - 1] if counted else 0
            self._update_stats(self._stats_of_rows(start, self.num_steps))

    def _stats_of_rows(self, start: int, stop: int) -> dict[str, RunningStats]:
        return {k: RunningStats.of(self.arrays[k][start:stop]) for k in self._stat_keys}

    def _update_stats(self, new_rows: Mapping[str, RunningStats]) -> None:
        """Merge statistics of newly committed rows; written after the commit, so a crash in between
        only leaves them behind, and the next writer catches up (``_load_stats``)."""
        rng = np.random.default_rng(self.num_episodes)
        for key, stats in new_rows.items():
            self._stats[key] = self._stats[key].merge(stats, rng)
            sample = self._stats[key].sample
            self._meta[f"stats_sample/{key}"][: len(sample)] = sample
        self._meta.attrs.update({"stats": {k: s.to_attrs() for k, s in self._stats.items()},
                                 "stats_episodes": self.num_episodes})

    # -- episodes ------------------------------------------------------------------------------
    def new_episode(self, *, instruction: str = "", source: str = "teleop", operator: str = "",
                    tags: list[str] | tuple[str, ...] = (), **extra: Any) -> EpisodeWriter:
        if self._episode is not None:
            raise StoreError("an episode is already being recorded: commit() or discard() it first")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, found {source!r}")
        info = {"instruction": instruction, "source": source, "operator": operator, "tags": list(tags),
                "robot": self.spec.name, "control_rate_hz": self.spec.control_rate_hz,
                "start_time": time.time(), "success": None, "recovered": False, **extra}
        json.dumps(info)  # refuse unserializable metadata now, not at commit
        self._data.attrs.update({"pending_episode": info})
        self._episode = EpisodeWriter(self, info)
        return self._episode

    def _write_commit(self, end: int, info: dict) -> int:
        # With ``durable``, the disk holds the episode's data before its end is written, and the end
        # before commit() returns: a power cut, not only a killed process, keeps committed episodes.
        index = self.num_episodes
        info_array, ends_array = self._meta["episode_info"], self._meta["episode_ends"]
        info_array.resize((index + 1,))
        info_array[index] = json.dumps(info)
        self._sync_to_disk()
        ends_array.resize((index + 1,))
        ends_array[index] = end  # the commit point
        self._sync_to_disk()
        self.episode_ends.append(end)
        self._data.attrs.update({"flushed": end, "pending_episode": None})
        return index

    def _sync_to_disk(self) -> None:
        if self.durable:
            os.sync()  # zarr's store does not fsync its files; syncing them one by one costs more

    def close(self) -> None:
        """Stop writing. An episode still open is discarded (it was never committed)."""
        if self._episode is not None:
            self._episode.discard()
        self._flusher.stop()
        self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class EpisodeWriter:
    """Frames of one episode, appended as they come; ``commit()`` makes the episode exist. Used as a
    context manager it commits on a normal exit and discards when the block raises."""

    def __init__(self, store: StoreWriter, info: dict):
        self._store = store
        self.info = info
        self.start = store.num_steps
        self.length = 0
        keys = store.spec.keys()
        frame_bytes = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in keys.values())
        self._block_rows = int(np.clip(BLOCK_BYTES // frame_bytes, 1, MAX_BLOCK_ROWS))
        self._block = self._new_block()
        self._filled = 0
        self._first_added_at = 0.0  # monotonic time the block's first frame arrived
        self._stats = {k: RunningStats.empty(keys[k].shape) for k in store._stat_keys}
        self._rng = np.random.default_rng(self.start)
        self._open = True
        self._block_lock = threading.Lock()  # the recording thread and the flusher's timer both hand off

    def _new_block(self) -> dict[str, np.ndarray]:
        return {k: np.empty((self._block_rows, *s.shape), s.dtype) for k, s in self._store.spec.keys().items()}

    def add(self, frame: Mapping[str, Any] | None = None, **keys: Any) -> None:
        """Append one frame: every key of the spec, shapes and dtypes as the spec says."""
        self._check_open()
        checked = self._store.spec.check_frame({**(frame or {}), **keys})
        self._store._flusher.wait_for_room()  # before the lock: the flusher's timer may need it meanwhile
        with self._block_lock:
            for key, value in checked.items():
                self._block[key][self._filled] = value
            if self._filled == 0:
                self._first_added_at = time.monotonic()
            self._filled += 1
            self.length += 1
            if self._filled == self._block_rows or time.monotonic() - self._first_added_at >= FLUSH_INTERVAL_S:
                self._hand_off(holds_room=True)
                return
        self._store._flusher.release_room()

    def flush_due_in(self) -> float | None:
        """Seconds until the partial block is due (0: overdue), or None when no frame waits."""
        with self._block_lock:
            if not self._open or self._filled == 0:
                return None
            return max(self._first_added_at + FLUSH_INTERVAL_S - time.monotonic(), 0.0)

    def hand_off_if_due(self) -> None:
        """The flusher's timer: hand the partial block over once it is ``FLUSH_INTERVAL_S`` old."""
        with self._block_lock:
            if self._open and self._filled and time.monotonic() - self._first_added_at >= FLUSH_INTERVAL_S:
                self._hand_off(holds_room=False)

    def _hand_off(self, holds_room: bool) -> None:
        """Queue the block's rows (called with the block lock held, so blocks queue in row order)."""
        if self._filled == 0:
            if holds_room:
                self._store._flusher.release_room()
            return
        block = {k: v[: self._filled] for k, v in self._block.items()}
        for key in self._stats:
            self._stats[key] = self._stats[key].merge(RunningStats.of(block[key]), self._rng)
        self._store._flusher.submit(self.start + self.length - self._filled, block, holds_room)
        self._block = self._new_block()
        self._filled = 0

    def commit(self, *, success: bool | None = None, **info: Any) -> int:
        """Write the rest of the episode, then its end. Returns the episode's index."""
        self._check_open()
        if self.length == 0:
            raise StoreError("cannot commit an episode with no frames: discard() it instead")
        with self._block_lock:
            self._hand_off(holds_room=False)
        self._store._flusher.wait()
        end = self.start + self.length
        arrays = self._store.arrays
        if not (arrays["terminated"][end - 1] or arrays["truncated"][end - 1]):
            arrays["truncated"][end - 1] = True  # an episode ends either terminated or truncated
        self.info.update(info, success=success)
        index = self._store._write_commit(end, self.info)
        self._store._update_stats(self._stats)
        self._close()
        return index

    def discard(self) -> None:
        """Drop the episode: nothing of it stays in the store. Works after a failed write too."""
        if not self._open:
            raise StoreError("this episode was already committed or discarded; start a new_episode()")
        with self._block_lock:  # the flusher's timer hands over nothing more of it
            self._open, self._filled = False, 0
        self._store._flusher.wait(raise_errors=False)
        self._store._truncate_to_committed()
        self._close()

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("this episode was already committed or discarded; start a new_episode()")
        self._store._flusher.raise_pending_error()

    def _close(self) -> None:
        with self._block_lock:
            self._open = False
        self._store._episode = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if not self._open:
            return
        if exc_type is None:
            self.commit()
        else:
            self.discard()


async def _write_all(writes: list, start: int, stop: int) -> None:
    async def write(array, rows):
        if array.shape[0] < stop:
            await array.resize((stop, *array.shape[1:]))
        await array.setitem(slice(start, stop), rows)

    await asyncio.gather(*(write(array, rows) for array, rows in writes))


class _Flusher:
    """A background thread writing blocks in order, and the timer that hands over a partial block when
    it is due. The recording thread takes a room before it may queue a block (``wait_for_room`` blocks
    while ``MAX_WAITING_BLOCKS`` wait); the timer's blocks need none, so it never waits on the recorder."""

    def __init__(self, store: StoreWriter):
        self._store = store
        self._queue: queue.Queue = queue.Queue()
        self._rooms = threading.Semaphore(MAX_WAITING_BLOCKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="store-flusher", daemon=True)
        self._thread.start()

    def wait_for_room(self) -> None:
        self.raise_pending_error()
        self._rooms.acquire()

    def release_room(self) -> None:
        self._rooms.release()

    def submit(self, start: int, block: dict[str, np.ndarray], holds_room: bool) -> None:
        self._queue.put((start, block, holds_room))

    def _run(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=self._next_due())
            except queue.Empty:
                episode = self._store._episode
                if episode is not None:
                    episode.hand_off_if_due()
                continue
            if job is None:
                break
            start, block, holds_room = job
            try:
                if self._error is None:
                    self._write(start, block)
            except BaseException as e:  # surfaced to the recording thread on its next call
                self._error = e
            finally:
                if holds_room:
                    self._rooms.release()
                self._queue.task_done()
        self._queue.task_done()

    def _next_due(self) -> float:
        episode = self._store._episode
        due = episode.flush_due_in() if episode is not None else None
        return min(FLUSH_INTERVAL_S / 4 if due is None else due, 1.0)  # idle: look again soon after a first frame

    def _write(self, start: int, block: dict[str, np.ndarray]) -> None:
        """Every key's rows at once (zarr compresses chunks on its own threads), then the mark."""
        stop = start + len(block["timestamp"])
        sync(_write_all([(array._async_array, block[key]) for key, array in self._store.arrays.items()], start, stop))
        self._store._data.attrs.update({"flushed": stop})

    def wait(self, raise_errors: bool = True) -> None:
        self._queue.join()
        if raise_errors:
            self.raise_pending_error()
        else:
            self._error = None

    def raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise StoreError(f"writing frames to the store failed: {error}; the episode in progress "
                             "is lost, committed episodes are intact") from error

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()
