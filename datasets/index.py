"""Index math of the samplers, as numba kernels over flat arrays.

Layout (the store's ``data/`` group): all steps of all episodes laid end to end along time.
``ends`` (int64) holds every episode's exclusive end, so episode ``i`` covers
``[ends[i-1], ends[i])`` with ``ends[-1] == 0``. Per-episode arrays (``terminal``, ``counts``,
``cdf``) have one entry per episode; per-step arrays (``reward``, returns) one per step. A batch is
described by two int64 arrays: ``t`` (global start step) and ``ep`` (its episode).

Conventions (gymnasium, one frame per control tick, no stored final observation): frame ``t`` holds
``obs_t, action_t, reward_t``; an episode is *terminal* when ``terminated`` is set on its last step,
in which case the observation after it is absorbing and needs no bootstrap. Any other end
(truncated, or a recording that just stopped) leaves the successor of the last step unknown.

Valid starts of an episode are always a prefix ``[s, s + counts[i])`` of it: every step for chunks
and sequences; for transitions every step but the last one of a non-terminal episode (it has no
successor observation).

Keep signatures to one dtype per argument (int64 / float32 / bool arrays, Python float and int
scalars) so each kernel compiles once and is cached on disk.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def episode_terminal(ends, terminated):
    """bool per episode: ``terminated`` set on its last step (empty episodes are not terminal)."""
    out = np.zeros(len(ends), dtype=np.bool_)
    start = 0
    for i in range(len(ends)):
        if ends[i] > start:
            out[i] = terminated[ends[i] - 1]
        start = ends[i]
    return out


@njit(cache=True)
def valid_start_counts(ends, terminal, need_successor):
    """Number of valid starts per episode; ``need_successor`` drops the last step of open episodes."""
    out = np.zeros(len(ends), dtype=np.int64)
    start = 0
    for i in range(len(ends)):
        length = ends[i] - start
        if need_successor and not terminal[i]:
            length -= 1
        out[i] = max(length, 0)
        start = ends[i]
    return out


@njit(cache=True)
def sample_starts(ends, counts, cdf, u_episode, u_offset):
    """Draw ``(t, ep)``: episode by inverse CDF of its (unnormalized) probability, then a valid start
    uniformly within it. ``u_*`` are uniforms in [0, 1); ``cdf[-1]`` must be > 0."""
    n = len(u_episode)
    t = np.empty(n, dtype=np.int64)
    ep = np.empty(n, dtype=np.int64)
    total = cdf[-1]
    for k in range(n):
        i = np.searchsorted(cdf, u_episode[k] * total, side="right")
        # Defensive against rounding at the top end: never past the last episode, never on zero mass.
        i = min(i, len(cdf) - 1)
        while cdf[i] == (cdf[i - 1] if i > 0 else 0.0):
            i -= 1
        start = ends[i - 1] if i > 0 else 0
        t[k] = start + min(np.int64(u_offset[k] * counts[i]), counts[i] - 1)
        ep[k] = i
    return t, ep


@njit(cache=True)
def discounted_sum(reward, start, count, gamma):
    """``reward[start] + gamma reward[start + 1] + ... + gamma^(count-1) reward[start + count - 1]``."""
    acc = 0.0
    for j in range(count):
        acc += gamma ** j * reward[start + j]
    return acc


@njit(cache=True)
def nstep_targets(t, ep, ends, reward, terminal, n, gamma):
    """n-step return, next index, bootstrap discount, steps used and terminal flag per start.

    ``m = min(n, e - t)`` in a terminal episode, else ``min(n, e - 1 - t)`` (the successor must be
    stored); the next index is clamped to ``e - 1`` when the window reaches the terminal step, where
    the bootstrap discount is 0 instead of ``gamma ** m``."""
    b = len(t)
    ret = np.zeros(b, dtype=np.float32)
    nxt = np.empty(b, dtype=np.int64)
    disc = np.empty(b, dtype=np.float32)
    steps = np.empty(b, dtype=np.int64)
    done = np.zeros(b, dtype=np.bool_)
    for k in range(b):
        e = ends[ep[k]]
        m = min(n, e - t[k]) if terminal[ep[k]] else min(n, e - 1 - t[k])
        ret[k] = discounted_sum(reward, t[k], m, gamma)
        steps[k] = m
        done[k] = terminal[ep[k]] and t[k] + m == e
        nxt[k] = min(t[k] + m, e - 1)
        disc[k] = 0.0 if done[k] else gamma ** m
    return ret, nxt, disc, steps, done


@njit(cache=True)
def window_index(t, ep, ends, history, horizon):
    """Rows ``t - history + 1 .. t + horizon - 1`` clipped to the episode (edge padding), and a
    mask that is True where a row was padded."""
    b = len(t)
    width = history + horizon - 1
    idx = np.empty((b, width), dtype=np.int64)
    pad = np.zeros((b, width), dtype=np.bool_)
    for k in range(b):
        s = ends[ep[k] - 1] if ep[k] > 0 else 0
        e = ends[ep[k]]
        for j in range(width):
            i = t[k] - history + 1 + j
            pad[k, j] = i < s or i >= e
            idx[k, j] = min(max(i, s), e - 1)
    return idx, pad


@njit(cache=True)
def chunk_targets(t, ep, ends, reward, terminal, h, gamma):
    """Per chunk start: discounted reward over its valid part, next index, bootstrap discount and
    whether the TD target is known.

    The successor ``t + h`` exists only when ``t + h < e``; otherwise the next index is ``e - 1``,
    the bootstrap discount 0, and the target is known only if the episode is terminal."""
    b = len(t)
    ret = np.zeros(b, dtype=np.float32)
    nxt = np.empty(b, dtype=np.int64)
    disc = np.zeros(b, dtype=np.float32)
    valid = np.ones(b, dtype=np.bool_)
    for k in range(b):
        e = ends[ep[k]]
        ret[k] = discounted_sum(reward, t[k], min(h, e - t[k]), gamma)
        if t[k] + h < e:
            nxt[k] = t[k] + h
            disc[k] = gamma ** h
        else:
            nxt[k] = e - 1
            valid[k] = terminal[ep[k]]
    return ret, nxt, disc, valid


@njit(cache=True)
def returns_to_go(ends, reward, gamma):
    """Discounted Monte-Carlo return of every step, ``G_t = r_t + gamma G_{t+1}``, restarting at each
    episode end (a truncated episode simply stops: no bootstrap beyond its last reward)."""
    out = np.zeros(ends[-1] if len(ends) else 0, dtype=np.float32)
    start = 0
    for i in range(len(ends)):
        acc = 0.0
        for k in range(ends[i] - 1, start - 1, -1):
            acc = reward[k] + gamma * acc
            out[k] = acc
        start = ends[i]
    return out
