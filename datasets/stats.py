"""Normalization statistics per low-dimensional key, merged episode by episode.

Mean and variance merge exactly (Chan et al. 1979, parallel variance); min and max exactly; the 1st
and 99th percentiles come from a uniform row sample of bounded size (reservoir sampling, Vitter 1985),
so they are estimates once a key has more than ``SAMPLE_ROWS`` rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_ROWS = 4096


@dataclass
class RunningStats:
    count: int
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray
    sample: np.ndarray  # (<= SAMPLE_ROWS, *shape) uniform sample of all rows seen

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> RunningStats:
        z = np.zeros(shape, np.float64)
        return cls(0, z, z.copy(), np.full(shape, np.inf), np.full(shape, -np.inf),
                   np.zeros((0, *shape), np.float32))

    @classmethod
    def of(cls, rows: np.ndarray) -> RunningStats:
        rows = np.asarray(rows, np.float64)
        mean = rows.mean(axis=0)
        sample = rows if len(rows) <= SAMPLE_ROWS else rows[np.random.default_rng(len(rows)).choice(
            len(rows), SAMPLE_ROWS, replace=False)]
        return cls(len(rows), mean, ((rows - mean) ** 2).sum(axis=0), rows.min(axis=0),
                   rows.max(axis=0), sample.astype(np.float32))

    def merge(self, other: RunningStats, rng: np.random.Generator) -> RunningStats:
        n = self.count + other.count
        if other.count == 0:
            return self
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return RunningStats(n, mean, m2, np.minimum(self.min, other.min),
                            np.maximum(self.max, other.max), self._merged_sample(other, rng))

    def _merged_sample(self, other: RunningStats, rng: np.random.Generator) -> np.ndarray:
        # Each side's sample stands for its count rows; draw the merged sample in proportion.
        total = len(self.sample) + len(other.sample)
        if total <= SAMPLE_ROWS and self.count == len(self.sample) and other.count == len(other.sample):
            return np.concatenate([self.sample, other.sample])
        take_other = rng.binomial(min(SAMPLE_ROWS, total), other.count / (self.count + other.count))
        take_other = min(take_other, len(other.sample))
        take_self = min(SAMPLE_ROWS - take_other, len(self.sample))
        return np.concatenate([
            self.sample[rng.choice(len(self.sample), take_self, replace=False)],
            other.sample[rng.choice(len(other.sample), take_other, replace=False)],
        ])

    def summary(self) -> dict[str, np.ndarray]:
        std = np.sqrt(self.m2 / max(self.count, 1))
        p01, p99 = (np.percentile(self.sample, [1, 99], axis=0) if len(self.sample)
                    else (self.min, self.max))
        return {"count": self.count, "mean": self.mean, "std": std, "min": self.min,
                "max": self.max, "p01": p01, "p99": p99}

    def to_attrs(self) -> dict:
        return {"count": self.count, "mean": self.mean.tolist(), "m2": self.m2.tolist(),
                "min": self.min.tolist(), "max": self.max.tolist(), "sample_rows": len(self.sample)}

    @classmethod
    def from_attrs(cls, d: dict, sample_array) -> RunningStats:
        """``sample_array`` holds ``SAMPLE_ROWS`` rows, of which the first ``sample_rows`` are valid."""
        return cls(int(d["count"]), np.asarray(d["mean"]), np.asarray(d["m2"]),
                   np.asarray(d["min"], np.float64), np.asarray(d["max"], np.float64),
                   sample_array[: int(d["sample_rows"])])
