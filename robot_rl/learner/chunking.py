"""Executing action chunks at the control rate, the same way in training rollouts and on the robot.

A chunking policy emits h actions per query. Two ways to turn chunks into one action per tick:

* open loop (``execute_steps=k``, 1 <= k <= h): query, run the first k actions of the chunk, query
  again. k = h (the default) queries least often; a smaller k reacts sooner to what the chunk did.
* temporal ensembling (ACT, Zhao et al. 2023): query every tick and average, for the current tick,
  every stored chunk's prediction of it with weights w_i = exp(-m * i), i = 0 the oldest (``decay`` is
  m; ACT's code uses 0.01, nearly equal weights; a larger m trusts the older predictions more).

Robot-independent: numpy in, numpy out; one executor per robot (or per simulated episode).
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

ACT_DECAY = 0.01  # ACT's temporal-ensembling constant m (Zhao et al. 2023, their code's k)


class ChunkExecutor:
    def __init__(self, execute_steps: int | None = None, temporal_ensemble: bool = False, decay: float = ACT_DECAY):
        if execute_steps is not None and (isinstance(execute_steps, bool) or int(execute_steps) != execute_steps
                                          or execute_steps < 1):
            raise ValueError(f"execute_steps: expected an integer >= 1 (actions run open-loop per chunk) or None "
                             f"(the whole chunk), found {execute_steps!r}")
        if temporal_ensemble and execute_steps is not None:
            raise ValueError(f"execute_steps={execute_steps} and temporal_ensemble=true: temporal ensembling "
                             "queries every tick; give one of them")
        if not (math.isfinite(decay) and decay >= 0):
            raise ValueError(f"decay: expected a number >= 0 (ACT uses {ACT_DECAY}), found {decay!r}")
        self.execute_steps = None if execute_steps is None else int(execute_steps)
        self.temporal_ensemble, self.decay = temporal_ensemble, float(decay)
        self._queue: deque[np.ndarray] = deque()
        self._chunks: deque[tuple[np.ndarray, int]] = deque()  # (chunk, ticks since it was predicted)

    def reset(self) -> None:
        """Forget every pending action (a new episode, or a new policy)."""
        self._queue.clear()
        self._chunks.clear()

    def needs_query(self) -> bool:
        return self.temporal_ensemble or not self._queue

    def push(self, chunk: np.ndarray) -> None:
        """A new prediction: [h, A] (or [A], a chunk of one)."""
        chunk = np.asarray(chunk, dtype=np.float32)
        chunk = chunk[None] if chunk.ndim == 1 else chunk
        if chunk.ndim != 2:
            raise ValueError(f"chunk: expected shape [h, A] or [A], found {chunk.shape}")
        if self.temporal_ensemble:
            self._chunks.append((chunk, 0))
            return
        k = len(chunk) if self.execute_steps is None else self.execute_steps
        if k > len(chunk):
            raise ValueError(f"execute_steps={k} exceeds the policy's chunk length h={len(chunk)}: "
                             f"give execute_steps between 1 and {len(chunk)}")
        self._queue = deque(chunk[:k])

    def next_action(self) -> np.ndarray:
        """The action for this tick; advances time by one tick."""
        if not self.temporal_ensemble:
            if not self._queue:
                raise RuntimeError("next_action() with nothing queued: push a chunk when needs_query()")
            return self._queue.popleft()
        while self._chunks and self._chunks[0][1] >= len(self._chunks[0][0]):
            self._chunks.popleft()  # predictions that no longer reach this tick
        if not self._chunks:
            raise RuntimeError("next_action() with no chunk covering this tick: push one first")
        predictions = np.stack([chunk[age] for chunk, age in self._chunks])   # oldest first
        weights = np.exp(-self.decay * np.arange(len(predictions)))
        self._chunks = deque((chunk, age + 1) for chunk, age in self._chunks)
        return (weights[:, None] * predictions).sum(0) / weights.sum()
