"""Sampling in a background thread, so a learner never waits on image reads between updates.

Frame decoding and file reads release the GIL, so the next batch is read while the learner computes.
"""
from __future__ import annotations

import queue
import threading


class Prefetcher:
    """Wraps any sampler: ``sample()`` returns a batch the thread has already made (``depth`` wait
    at most). ``refresh()`` asks the thread to pick up new episodes before its next batch, so the
    source is never refreshed while a batch is being read."""

    def __init__(self, sampler, depth: int = 2):
        self.sampler = sampler
        self._batches: queue.Queue = queue.Queue(maxsize=depth)
        self._refresh = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._refresh.is_set():
                    self._refresh.clear()
                    self.sampler.refresh()
                item = self.sampler.sample()
            except BaseException as e:  # handed to the consumer, raised there
                item = e
            while not self._stop.is_set():
                try:
                    self._batches.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def sample(self) -> dict:
        item = self._batches.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def refresh(self) -> None:
        self._refresh.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
