"""Random access to camera frames: one chunk per frame, many frames per shard file.

zarr's own read path costs about 0.7 ms a chunk in Python, many times the decode itself, so a batch
of 1024 frames would take most of a second. This reader finds each frame through its shard's index
(zarr 3 sharding: a table of (offset, length) per frame at the end of the file, with its own CRC32C),
then checks and decodes the frame straight into the batch.

Shards whose frames are all committed never change again: they are memory-mapped and their frames'
checksums verified once, then kept (up to ``MAX_OPEN_SHARDS``), so a frame costs no system call and
no second checksum. The shard being appended to is read
afresh on every batch: the writer replaces it atomically, and a copy kept from before a discard could
hold frames of an episode that no longer exists.
"""
from __future__ import annotations

import asyncio
import mmap
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from robot_rl.datasets.codecs import checksum_ok, decode_frame
from robot_rl.datasets.errors import CorruptChunkError

EMPTY = 2**64 - 1  # zarr's index entry for a chunk that was never written
MAX_OPEN_SHARDS = 256
# Decompression runs without the GIL: two threads decode a batch of zstd frames in about half the
# time, lz4 in about 0.7. Raw frames are plain copies, cheaper than handing the GIL over: done inline.
PARALLEL_CODECS = ("zstd", "jpeg", "lz4")
DECODE_THREADS = min(4, os.cpu_count() or 1)
_POOL = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="frame-decode")


class FrameReader:
    def __init__(self, array: zarr.Array, codec: str, local_root: Path | None):
        self.array = array
        self.codec = codec
        self.frame_shape = tuple(array.shape[1:])
        self.shard_frames = array.shards[0] if array.shards else 1
        self._index_bytes = 16 * self.shard_frames + 4
        self._sealed: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._dir = f"{local_root / array.path}/c" if local_root is not None else None

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Frames ``indices`` (committed steps, any order, repeats allowed) as (N, H, W, 3) uint8."""
        indices = np.asarray(indices, dtype=np.int64)
        frames = np.empty((len(indices), *self.frame_shape), np.uint8)
        if len(indices) == 0:
            return frames
        order = np.argsort(indices, kind="stable")
        stored, checked = self._fetch(indices[order])

        def decode(part: range) -> None:
            for j in part:
                k = int(order[j])
                if not (checked[j] or checksum_ok(stored[j])):
                    self._damaged(int(indices[k]), "checksum mismatch")
                try:
                    decode_frame(self.codec, stored[j], frames[k])
                except Exception as e:
                    self._damaged(int(indices[k]), f"{type(e).__name__}: {e}")

        if self.codec not in PARALLEL_CODECS or len(indices) < 64:
            decode(range(len(indices)))
            return frames
        bounds = np.linspace(0, len(indices), DECODE_THREADS + 1).astype(int)
        for future in [_POOL.submit(decode, range(a, z)) for a, z in zip(bounds[:-1], bounds[1:])]:
            future.result()
        return frames

    def _fetch(self, indices: np.ndarray) -> tuple[list[np.ndarray], list[bool]]:
        """The stored bytes (uint8 views) of sorted frame ``indices``, and whether each one's
        checksum was already verified."""
        if self._dir is None:
            stored = self._fetch_remote(indices)
            return stored, [False] * len(stored)
        shards = indices // self.shard_frames
        last_sealed = (int(indices[-1]) + 1) // self.shard_frames - 1
        stored, checked = [], []
        for shard in np.unique(shards).tolist():
            frames = indices[shards == shard]
            if shard <= last_sealed:
                data, index, intact = self._sealed_shard(shard)
            else:
                (data, index), intact = self._read_shard(shard), None
            entries = self._entries(index, frames)  # a frame missing from the index raises here
            if intact is not None:
                for frame in frames[~intact[frames % self.shard_frames]].tolist():
                    self._damaged(frame, "checksum mismatch")
            stored += [data[o:o + n] for o, n in entries]
            checked += [intact is not None] * len(frames)
        return stored, checked

    def _sealed_shard(self, shard: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if shard in self._sealed:
            self._sealed.move_to_end(shard)
            return self._sealed[shard]
        with open(self._path(shard), "rb") as f:
            data = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)
        index = self._parse_index(shard, data[-self._index_bytes:].tobytes())
        intact = np.array([o != EMPTY and checksum_ok(data[o:o + n]) for o, n in index.tolist()])
        self._sealed[shard] = data, index, intact
        if len(self._sealed) > MAX_OPEN_SHARDS:
            self._sealed.popitem(last=False)  # the map closes with its last view
        return self._sealed[shard]

    def _read_shard(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        with open(self._path(shard), "rb") as f:
            data = np.frombuffer(f.read(), np.uint8)
        return data, self._parse_index(shard, data[-self._index_bytes:].tobytes())

    def _path(self, shard: int) -> str:
        path = f"{self._dir}/{shard}/0/0/0"
        if not os.path.exists(path):
            self._missing(shard * self.shard_frames)
        return path

    def _fetch_remote(self, indices: np.ndarray) -> list[np.ndarray]:
        store, prototype = self.array.store, default_buffer_prototype()
        shards = indices // self.shard_frames
        requests = []
        for shard in np.unique(shards).tolist():
            key = f"{self.array.path}/c/{shard}/0/0/0"
            tail = sync(store.get(key, prototype, SuffixByteRequest(self._index_bytes)))
            if tail is None:
                self._missing(shard * self.shard_frames)
            index = self._parse_index(shard, tail.to_bytes())
            requests += [(key, RangeByteRequest(o, o + n)) for o, n in self._entries(index, indices[shards == shard])]

        async def get_all():
            return await asyncio.gather(*(store.get(key, prototype, r) for key, r in requests))

        return [np.frombuffer(b.to_bytes(), np.uint8) for b in sync(get_all())]

    def _entries(self, index: np.ndarray, frames: np.ndarray) -> list[tuple[int, int]]:
        entries = index[frames % self.shard_frames]
        empty = entries[:, 0] == EMPTY
        if empty.any():
            self._missing(int(frames[empty][0]))
        return entries.tolist()

    def _parse_index(self, shard: int, raw: bytes) -> np.ndarray:
        if len(raw) != self._index_bytes or google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            raise CorruptChunkError(
                f"{self.array.path}: the index of shard {shard} (frames {shard * self.shard_frames}.."
                f"{(shard + 1) * self.shard_frames - 1}) is damaged; run `robot-rl data validate` to list "
                "every damaged episode")
        return np.frombuffer(raw[:-4], "<u8").reshape(self.shard_frames, 2)

    def _damaged(self, frame: int, reason: str):
        raise CorruptChunkError(
            f"{self.array.path}: frame {frame} does not decode ({reason}); run `robot-rl data validate` "
            "to list every damaged episode")

    def _missing(self, frame: int):
        raise CorruptChunkError(
            f"{self.array.path}: frame {frame} is missing from the store; run `robot-rl data validate` "
            "to list every damaged episode")
