"""Stamped samples of message streams, aligned by time: pure Python (no rclpy), shared by the ROS stream
subscriptions (robot_rl.drivers.streams) and the episode recorder's core (robot_rl.drivers.episode_recorder).

    buffer = StreamBuffer("joint_states")
    buffer.add(stamp, value)                  # any order; kept sorted by stamp
    streams = AlignedStreams({"state": buffer}, stale_after_s=0.5)
    obs, ages = streams.observation_at(t)     # each stream's newest sample stamped at or before t

Time: stamps are seconds of the system clock; a stream is *stale* when its newest sample is older than
``stale_after_s`` at the time asked for, or when it has none.
"""
from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KEEP_S = 5.0  # seconds of history each stream keeps


class StaleStreamError(RuntimeError):
    """A stream the observation needs has no message recent enough. ``streams``: name -> reason."""

    def __init__(self, streams: dict[str, str], stale_after_s: float):
        self.streams = dict(streams)
        listed = "; ".join(f"{name} ({why})" for name, why in self.streams.items())
        super().__init__(f"stale streams (no message within {stale_after_s:g} s): {listed}; check that the nodes "
                         "publishing them run in this ROS domain and namespace")


@dataclass(frozen=True)
class Sample:
    stamp: float      # the message's stamp, s
    received: float   # time.time() on arrival, s
    value: Any


class StreamBuffer:
    """The recent messages of one stream, ordered by stamp; thread-safe."""

    def __init__(self, name: str, keep_s: float = KEEP_S, max_samples: int = 1000):
        self.name, self.keep_s, self.max_samples = name, float(keep_s), int(max_samples)
        self._stamps: list[float] = []
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self.count = 0

    def add(self, stamp: float, value: Any, received: float | None = None) -> None:
        sample = Sample(float(stamp), time.time() if received is None else float(received), value)
        with self._lock:
            at = bisect.bisect_right(self._stamps, sample.stamp)
            self._stamps.insert(at, sample.stamp)
            self._samples.insert(at, sample)
            self.count += 1
            oldest = self._stamps[-1] - self.keep_s
            drop = max(bisect.bisect_left(self._stamps, oldest), len(self._stamps) - self.max_samples)
            if drop > 0:
                del self._stamps[:drop], self._samples[:drop]

    @property
    def last(self) -> Sample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def latest_at(self, t: float) -> Sample | None:
        """The newest sample stamped at or before ``t``."""
        with self._lock:
            at = bisect.bisect_right(self._stamps, t)
            return self._samples[at - 1] if at else None

    def after(self, t: float, before: float = float("inf")) -> list[Sample]:
        """Samples stamped after ``t`` and before ``before``, oldest first."""
        with self._lock:
            lo, hi = bisect.bisect_right(self._stamps, t), bisect.bisect_left(self._stamps, before)
            return self._samples[lo:hi]

    def staleness(self, now: float, stale_after_s: float) -> str | None:
        """Why the stream is stale at ``now``, or None when its newest message is recent enough."""
        last = self.last
        if last is None:
            return "no message yet"
        age = now - last.stamp
        return f"last message {age:.2f} s old" if age > stale_after_s else None


def stale_reasons(buffers: Iterable[StreamBuffer], now: float, stale_after_s: float) -> dict[str, str]:
    return {b.name: why for b in buffers if (why := b.staleness(now, stale_after_s)) is not None}


class AlignedStreams:
    """Observation keys -> their streams; builds observations from the samples stamped at or before a time.
    ``decode(key, value)`` turns a stored sample into the key's array (default: the value as stored), so a
    stream can keep raw messages and decode only the ones an observation uses."""

    def __init__(self, buffers: Mapping[str, StreamBuffer], *, stale_after_s: float = 0.5,
                 decode: Callable[[str, Any], Any] | None = None):
        if not stale_after_s > 0:
            raise ValueError(f"stale_after_s: expected a positive number of seconds, found {stale_after_s}")
        self.buffers: dict[str, StreamBuffer] = dict(buffers)  # key -> its stream
        self.stale_after_s = float(stale_after_s)
        self._decode = decode or (lambda key, value: value)

    @property
    def stream_names(self) -> list[str]:
        return [b.name for b in self.buffers.values()]

    def stale(self, now: float | None = None) -> dict[str, str]:
        """Stream name -> why it is stale at ``now`` (default: the present time); empty when all are live."""
        return stale_reasons(self.buffers.values(), time.time() if now is None else now, self.stale_after_s)

    def observation_at(self, t: float) -> tuple[dict[str, Any], dict[str, float]]:
        """(observation, per-stream age t - stamp) from each stream's newest sample stamped at or before
        ``t``; StaleStreamError names every stream without one, or with one older than stale_after_s."""
        samples, stale = {}, {}
        for key, buffer in self.buffers.items():
            sample = buffer.latest_at(t)
            if sample is None:
                stale[buffer.name] = "no message at or before the tick"
            elif t - sample.stamp > self.stale_after_s:
                stale[buffer.name] = f"newest message {t - sample.stamp:.2f} s before the tick"
            else:
                samples[key] = sample
        if stale:
            raise StaleStreamError(stale, self.stale_after_s)
        obs = {key: self._decode(key, sample.value) for key, sample in samples.items()}
        ages = {self.buffers[key].name: t - sample.stamp for key, sample in samples.items()}
        return obs, ages
