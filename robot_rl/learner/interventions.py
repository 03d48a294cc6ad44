"""The operator's steps as demonstrations (HIL-SERL): the rows of the online store whose ``intervention``
flag is set (robot_rl.drivers.takeover) are sampled on the demonstration side of each batch as well as on
the online side, where they are anyway.

What a batch is made of, per phase (robot_rl.learner.replay.Replay.sample):

- A phase that samples the offline dataset (RLPD's 50/50; the offline pretraining of WSRL and the
  others): its offline share is drawn uniformly over the union of the dataset's rows and the human
  steps, so each human step weighs as much as one demonstration step and the demonstration side grows
  with every takeover, as HIL-SERL's demo buffer does. The online share is unchanged.
- A phase that samples no offline data (WSRL online, which by design does not retain the offline
  dataset): ``hil_ratio`` of each batch (default 0.5, HIL-SERL's demo share) comes from the human steps
  once there are any; without takeovers the batch is all online, WSRL as published.

Why on both sides: on the online side alone a few dozen human steps among thousands are rarely drawn;
the demonstration side keeps the corrections in every batch, which is what makes HIL-SERL learn from few.
Neither side changes the reward: a human step is a transition like any other, with the task's (or the
classifier's, or the operator's) reward.
"""
from __future__ import annotations

import numpy as np

INTERVENTION = "intervention"


def human_rows(source) -> np.ndarray:
    """Rows of ``source`` (a store reader, or merged readers) whose intervention flag is set; none for a
    store without the key (old stores, the fast twin actor's)."""
    try:
        flags = np.asarray(source.column(INTERVENTION), dtype=bool)
    except KeyError:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(flags)


def human_sampler(sampler_class: type, source, batch_size: int, **kwargs):
    """A ``sampler_class`` (TransitionSampler or ChunkSampler) over ``source`` whose starts are the human
    steps only (those that are valid starts: a truncated episode's last row has no successor)."""

    class HumanSteps(sampler_class):
        _rows, _synced_ends = np.zeros(0, dtype=np.int64), -1

        def starts(self) -> np.ndarray:
            self._sync()
            if len(self._ends) != self._synced_ends:
                rows = human_rows(self.source)
                ep = np.searchsorted(self._ends, rows, side="right")
                first = np.concatenate([[0], self._ends[:-1]])[ep] if len(rows) else rows
                self._rows = rows[(rows - first) < self._counts[ep]] if len(rows) else rows
                self._synced_ends = len(self._ends)
            return self._rows

        def __len__(self) -> int:
            return len(self.starts())

        def _draw(self, b: int):
            rows = self.starts()
            if not len(rows):
                raise ValueError("no human steps to sample: no row of the online store has intervention set")
            t = rows[self.rng.integers(len(rows), size=b)]
            return t, np.searchsorted(self._ends, t, side="right")

    return HumanSteps(source, batch_size, **kwargs)


def demo_side(offline_ratio: float, hil_ratio: float, offline_rows: int, human: int) -> tuple[float, float]:
    """(dataset share, human share) of a batch; the module docstring's rule."""
    if human == 0:
        return offline_ratio, 0.0
    if offline_ratio > 0:
        human_share = offline_ratio * human / (offline_rows + human)
        return offline_ratio - human_share, human_share
    return 0.0, hil_ratio
