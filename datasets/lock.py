"""One writer per store. A local store is locked with ``flock`` on ``<store>/writer.lock``: the kernel
drops the lock when the holder dies, even by SIGKILL, so a crash never leaves a stale lock behind.
A remote store gets a lock object created only if absent, then read back (of two writers racing,
only the one whose object stands proceeds); a holder that died leaves it behind, and
``robot-rl data recover --break-lock`` removes it."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time

from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from robot_rl.datasets.errors import StoreLockedError
from robot_rl.datasets.layout import LOCK_FILE, local_path


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


class WriterLock:
    def __init__(self, url, zarr_store):
        self.url = url
        self._store = zarr_store
        self._fd: int | None = None
        path = local_path(url)
        self._path = path / LOCK_FILE if path is not None else None

    def acquire(self) -> WriterLock:
        if self._path is not None:
            self._acquire_local()
        else:
            self._acquire_remote()
        return self

    def _acquire_local(self):
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            os.close(fd)
            raise StoreLockedError(
                f"{self.url} is already open for writing by another process ({holder or 'unknown'}); "
                "one writer at a time: stop that recorder first, or read the store instead") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        self._fd = fd

    def _acquire_remote(self):
        body = default_buffer_prototype().buffer.from_bytes(json.dumps(_holder()).encode())
        sync(self._store.set_if_not_exists(LOCK_FILE, body))
        found = sync(self._store.get(LOCK_FILE, default_buffer_prototype()))
        if found is None or found.to_bytes() != body.to_bytes():
            holder = found.to_bytes().decode(errors="replace") if found is not None else "unknown"
            raise StoreLockedError(
                f"{self.url} is already open for writing ({holder}); if that writer died, run "
                f"`robot-rl data recover {self.url} --break-lock`")
        self._body = body

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        elif self._path is None and getattr(self, "_body", None) is not None:
            sync(self._store.delete(LOCK_FILE))
            self._body = None


def break_remote_lock(zarr_store) -> None:
    sync(zarr_store.delete(LOCK_FILE))
