"""Batch samplers over a :class:`~robot_rl.datasets.source.StepSource`.

* :class:`TransitionSampler`: n-step transitions for TD learning (SAC, RLPD, Cal-QL, WSRL).
* :class:`ChunkSampler`: action chunks with chunk-level rewards and bootstrap (CO-RFT, ACT-style).
* :class:`SequenceSampler`: edge-padded windows of any keys (diffusion policy, histories).
* :class:`MixtureSampler`: fixed-ratio mixtures of the above (RLPD's 50/50 offline/online).

Every batch is a dict of numpy arrays (observations nested under ``"obs"``/``"next_obs"``); the index
math lives in :mod:`robot_rl.datasets.index`. Samplers never call ``source.refresh()`` on their own:
whoever owns the source calls it (or ``sampler.refresh()``), and every ``sample()`` notices grown
``episode_ends`` and extends its index (per-episode arrays rebuilt, returns-to-go only for the new
steps). Episodes that arrive after ``episode_weights`` were given get weight 1.

Monte-Carlo returns (``mc_return``) restart at each episode end and do not bootstrap past a truncated
end: for a truncated episode they are the discounted sum of the rewards that were recorded.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import index
from .source import StepSource

_UNIFORM_OVER = ("steps", "episodes")
_LOW_DIM_COLUMNS = ("action", "reward", "terminated", "truncated", "timestamp")


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, found {value!r}")
    return int(value)


def _check_discount(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"discount: expected a number in [0, 1], found {value!r}")
    return float(value)


def returns_to_go(episode_ends: np.ndarray, reward: np.ndarray, discount: float) -> np.ndarray:
    """float32 ``G_t = r_t + discount * G_{t+1}`` for every committed step, ``G_{e-1} = r_{e-1}``.
    Truncated episodes just stop (no bootstrap beyond their last reward)."""
    ends = np.asarray(episode_ends, dtype=np.int64)
    reward = np.asarray(reward, dtype=np.float32)
    n = int(ends[-1]) if len(ends) else 0
    if len(reward) < n:
        raise ValueError(f"reward: expected at least {n} rows (episode_ends[-1]), found {len(reward)}")
    return index.returns_to_go(ends, reward, _check_discount(discount))


class _Sampler:
    """Shared part: the per-episode index, start sampling, growth, and batched gathers. Subclasses
    define ``_batch(t, ep)``: the batch for start steps ``t`` of episodes ``ep``."""

    _need_successor = False  # transitions need the observation after the start to be stored
    _needs_returns = True

    def __init__(self, source: StepSource, batch_size: int, *, keys, discount: float, uniform_over: str,
                 episode_weights, seed, allowed_keys: tuple[str, ...]):
        self.source = source
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.discount = _check_discount(discount)
        if uniform_over not in _UNIFORM_OVER:
            raise ValueError(f"uniform_over: expected one of {_UNIFORM_OVER}, found {uniform_over!r}")
        self.uniform_over = uniform_over
        self.keys = tuple(source.obs_keys if keys is None else keys)
        unknown = [k for k in self.keys if k not in allowed_keys]
        if unknown:
            raise ValueError(f"keys: expected names from {allowed_keys}, found unknown {unknown}")
        self.rng = np.random.default_rng(seed)
        self._ends = np.zeros(0, dtype=np.int64)
        self._terminal = np.zeros(0, dtype=bool)
        self._counts = np.zeros(0, dtype=np.int64)
        self._weights = np.zeros(0)
        self._mc_return = np.zeros(0, dtype=np.float32)
        self._reward = np.zeros(0, dtype=np.float32)
        self._cdf = None
        self._sync()
        if episode_weights is not None:
            self.set_episode_weights(episode_weights)

    def set_episode_weights(self, weights) -> None:
        """Multiply each episode's probability by ``weights[i]`` (one per current episode, >= 0)."""
        self._sync()
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != self._ends.shape:
            raise ValueError(f"episode_weights: expected shape ({len(self._ends)},) (one per episode), "
                             f"found {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"episode_weights: expected finite values >= 0, found min {w.min()!r}")
        self._weights = w.copy()
        self._cdf = None

    def refresh(self) -> int:
        """``source.refresh()`` and pick up the new episodes; returns how many arrived."""
        arrived = self.source.refresh()
        self._sync()
        return arrived

    def __len__(self) -> int:
        """Number of valid starts (zero-weight episodes included)."""
        self._sync()
        return int(self._counts.sum())

    def sample(self, batch_size: int | None = None) -> dict:
        b = self.batch_size if batch_size is None else _check_int("batch_size", batch_size, 1)
        t, ep = self._draw(b)
        return self._batch(t, ep)

    def _sync(self) -> None:
        ends = np.asarray(self.source.episode_ends, dtype=np.int64)
        old = len(self._ends)
        if len(ends) == old:
            return
        if len(ends) < old or (old and ends[old - 1] != self._ends[old - 1]):
            old = 0  # the source was replaced, not appended to: rebuild from scratch
        self._reward = np.ascontiguousarray(self.source.column("reward"), dtype=np.float32)
        terminated = np.ascontiguousarray(self.source.column("terminated"), dtype=bool)
        self._terminal = index.episode_terminal(ends, terminated)
        self._counts = index.valid_start_counts(ends, self._terminal, self._need_successor)
        self._weights = np.concatenate([self._weights[:old], np.ones(len(ends) - old)])
        if self._needs_returns:
            s = int(ends[old - 1]) if old else 0
            new = index.returns_to_go(ends[old:] - s, self._reward[s:], self.discount)
            self._mc_return = np.concatenate([self._mc_return[:s], new])
        self._ends = ends
        self._cdf = None

    def _draw(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        self._sync()
        if self._cdf is None:
            per_episode = self._counts if self.uniform_over == "steps" else self._counts > 0
            self._cdf = np.cumsum(self._weights * per_episode)
        if not len(self._cdf) or self._cdf[-1] <= 0:
            raise ValueError(
                f"{type(self).__name__}: nothing to sample: source has {len(self._ends)} episodes with "
                f"{int(self._counts.sum())} valid starts, total episode weight on them "
                f"{float(self._cdf[-1]) if len(self._cdf) else 0.0}; commit episodes (then refresh()) "
                f"or give some nonzero episode_weights")
        u = self.rng.random((2, b))
        return index.sample_starts(self._ends, self._counts, self._cdf, u[0], u[1])

    def _gather(self, *groups: np.ndarray) -> list[dict]:
        """Rows of every key at each group of indices, with one ``source.gather`` per key and no
        copy beyond it (a store's frame reader decodes each distinct frame once on its own)."""
        flat = np.concatenate([g.ravel() for g in groups])
        bounds = np.cumsum([0] + [g.size for g in groups])
        out = [{} for _ in groups]
        for key in self.keys:
            values = np.asarray(self.source.gather(key, flat))
            for o, g, a, z in zip(out, groups, bounds[:-1], bounds[1:]):
                o[key] = values[a:z].reshape(g.shape + values.shape[1:])
        return out


class TransitionSampler(_Sampler):
    """n-step transitions. Batch: ``obs``, ``next_obs`` (dicts), ``action`` [B, A], ``reward`` (n-step
    discounted sum), ``discount`` (bootstrap factor: ``discount**n_steps``, 0 after a terminal),
    ``terminated``, ``n_steps``, ``mc_return``, ``index`` (start step)."""

    _need_successor = True

    def __init__(self, source: StepSource, batch_size: int, *, keys=None, discount: float = 0.99,
                 n_step: int = 1, uniform_over: str = "steps", episode_weights=None, seed=0):
        self.n_step = _check_int("n_step", n_step, 1)
        super().__init__(source, batch_size, keys=keys, discount=discount, uniform_over=uniform_over,
                         episode_weights=episode_weights, seed=seed, allowed_keys=tuple(source.obs_keys))

    def _batch(self, t, ep):
        ret, nxt, disc, steps, done = index.nstep_targets(
            t, ep, self._ends, self._reward, self._terminal, self.n_step, self.discount)
        obs, next_obs = self._gather(t, nxt)
        return {"obs": obs, "next_obs": next_obs, "action": self.source.column("action")[t],
                "reward": ret, "discount": disc, "terminated": done, "n_steps": steps,
                "mc_return": self._mc_return[t], "index": t}


class ChunkSampler(_Sampler):
    """Action chunks of length ``horizon`` from every step. Batch: ``obs``, ``next_obs`` (at
    ``t + horizon``, or the episode's last step), ``action_chunk`` [B, H, A] (edge-padded),
    ``action_mask`` [B, H] (True on real actions), ``chunk_reward``, ``bootstrap_discount``,
    ``td_valid`` (False when the chunk runs off a non-terminal end: drop it from the TD loss, keep it
    for imitation), ``mc_return``, ``index``."""

    def __init__(self, source: StepSource, batch_size: int, *, keys=None, discount: float = 0.99,
                 horizon: int = 1, uniform_over: str = "steps", episode_weights=None, seed=0):
        self.horizon = _check_int("horizon", horizon, 1)
        super().__init__(source, batch_size, keys=keys, discount=discount, uniform_over=uniform_over,
                         episode_weights=episode_weights, seed=seed, allowed_keys=tuple(source.obs_keys))

    def _batch(self, t, ep):
        rows, pad = index.window_index(t, ep, self._ends, 1, self.horizon)
        ret, nxt, disc, valid = index.chunk_targets(
            t, ep, self._ends, self._reward, self._terminal, self.horizon, self.discount)
        obs, next_obs = self._gather(t, nxt)
        return {"obs": obs, "next_obs": next_obs, "action_chunk": self.source.column("action")[rows],
                "action_mask": ~pad, "chunk_reward": ret, "bootstrap_discount": disc, "td_valid": valid,
                "mc_return": self._mc_return[t], "index": t}


class SequenceSampler(_Sampler):
    """Windows ``t - history + 1 .. t + horizon - 1`` around every step ``t``, clipped to the episode
    by repeating its first/last frame. Batch: ``{key: [B, history + horizon - 1, ...]}`` for
    ``keys`` (default: observation keys and ``action``), ``pad_mask`` [B, T] (True on padded
    positions), ``index`` [B] (the step ``t``, at position ``history - 1``)."""

    _needs_returns = False

    def __init__(self, source: StepSource, batch_size: int, *, keys=None, history: int = 1,
                 horizon: int = 1, uniform_over: str = "steps", episode_weights=None, seed=0):
        self.history = _check_int("history", history, 1)
        self.horizon = _check_int("horizon", horizon, 1)
        allowed = tuple(source.obs_keys) + _LOW_DIM_COLUMNS
        keys = tuple(source.obs_keys) + ("action",) if keys is None else keys
        super().__init__(source, batch_size, keys=keys, discount=1.0, uniform_over=uniform_over,
                         episode_weights=episode_weights, seed=seed, allowed_keys=allowed)

    def _batch(self, t, ep):
        rows, pad = index.window_index(t, ep, self._ends, self.history, self.horizon)
        (values,) = self._gather(rows)
        return {**values, "pad_mask": pad, "index": t}


def _split_counts(ratios: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding of ``ratios * total`` to integers summing to ``total``."""
    exact = ratios / ratios.sum() * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _concat(parts: list[dict], labels: list[int]) -> dict:
    keys = list(parts[0])
    for p, k in zip(parts[1:], labels[1:]):
        if list(p) != keys:
            raise ValueError(f"MixtureSampler: samplers return different batch keys: sampler {labels[0]} "
                             f"has {keys}, sampler {k} has {list(p)}; use the same sampler type and keys")
    return {k: _concat([p[k] for p in parts], labels) if isinstance(parts[0][k], dict)
            else np.concatenate([p[k] for p in parts]) for k in keys}


class MixtureSampler:
    """Exactly ``ratio * batch_size`` rows (largest-remainder rounding) from each sampler, concatenated
    in the given order, plus ``source`` [B] int64: which sampler each row came from."""

    def __init__(self, samplers, batch_size: int):
        pairs = list(samplers)
        if not pairs:
            raise ValueError("samplers: expected at least one (sampler, ratio) pair, found none")
        self.samplers = [s for s, _ in pairs]
        self.ratios = np.array([float(r) for _, r in pairs])
        if not np.all(np.isfinite(self.ratios)) or np.any(self.ratios < 0):
            raise ValueError(f"ratios: expected finite values >= 0, found {self.ratios.tolist()}")
        if abs(self.ratios.sum() - 1.0) > 1e-6:
            raise ValueError(f"ratios: expected to sum to 1, found {self.ratios.sum():.6g} "
                             f"({self.ratios.tolist()})")
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.counts = _split_counts(self.ratios, self.batch_size)

    def refresh(self) -> int:
        return sum(s.refresh() for s in self.samplers)

    def sample(self, batch_size: int | None = None) -> dict:
        counts = self.counts if batch_size is None else _split_counts(
            self.ratios, _check_int("batch_size", batch_size, 1))
        used = [k for k, c in enumerate(counts) if c > 0]
        batch = _concat([self.samplers[k].sample(int(counts[k])) for k in used], used)
        batch["source"] = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        return batch


def to_torch(batch: dict, device="cpu") -> dict:
    """The same nested dict as torch tensors on ``device``; dtypes are kept (images stay uint8)."""
    import torch

    def convert(x):
        if isinstance(x, dict):
            return {k: convert(v) for k, v in x.items()}
        return torch.from_numpy(np.ascontiguousarray(x)).to(device)

    return convert(batch)
