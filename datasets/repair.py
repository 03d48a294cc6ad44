"""``validate`` reads a whole store and reports every problem in plain words, changing nothing;
``recover`` settles what a crashed writer left behind."""
from __future__ import annotations

import collections
import fcntl
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robot_rl.datasets.errors import StoreError
from robot_rl.datasets.frames import FrameReader
from robot_rl.datasets.layout import LOCK_FILE, local_path, open_root, read_commit_record, zarr_store
from robot_rl.datasets.lock import break_remote_lock
from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.datasets.writer import StoreWriter


@dataclass
class Problem:
    severity: str  # "error": data is damaged or unreadable; "warning": consistent, but needs attention
    message: str


def validate(url, on_key_checked: Callable[[str, int], None] | None = None) -> list[Problem]:
    """Every problem found in the store at ``url``; an empty list means it is sound.
    ``on_key_checked(key, keys_total)`` is called as each key's chunks are all read (progress)."""
    try:
        root = open_root(url, "r")
        spec = EmbodimentSpec.from_dict(root.attrs["spec"])
    except StoreError as e:
        return [Problem("error", str(e))]
    except (KeyError, TypeError, ValueError) as e:
        return [Problem("error", f"the embodiment spec in the group attributes is unreadable: {e!r}")]
    problems: list[Problem] = []
    keys = spec.keys()
    arrays = {}
    for key, key_spec in keys.items():
        if f"data/{key}" not in root:
            problems.append(Problem("error", f"data/{key} is missing: the spec names it but the store has no such array"))
            continue
        array = arrays[key] = root[f"data/{key}"]
        if tuple(array.shape[1:]) != key_spec.shape or array.dtype != np.dtype(key_spec.dtype):
            problems.append(Problem("error", f"data/{key}: spec says shape {key_spec.shape} {key_spec.dtype}, "
                                             f"array has {tuple(array.shape[1:])} {array.dtype}"))
    if problems:
        return problems
    record = read_commit_record(root, keys)
    n, committed, tail = len(record.ends), record.steps, record.tail
    if n < record.entries:
        problems.append(Problem("warning", f"meta/episode_ends has {record.entries - n} entries after episode {n - 1} "
                                           "that are not valid commits (a commit was interrupted); readers ignore them"))
    problems += _check_info(root, n)
    if tail > 0:
        active = _writer_active(url)
        problems.append(Problem(
            "warning",
            f"{tail} steps after the last committed episode are " + (
                "an episode being recorded right now (a writer holds the lock)" if active else
                f"left by a writer that stopped mid-episode: `robot-rl data recover {url} --salvage` keeps "
                "them as a truncated episode, `--drop` removes them")))
    for key, array in arrays.items():
        damaged = _check_chunks(key, array, spec, committed, record.ends, url)
        problems += damaged
        if key == "action" and not damaged:
            problems += _check_action_bounds(array, spec.action, committed, record.ends)
        if on_key_checked:
            on_key_checked(key, len(arrays))
    counted = int(root["meta"].attrs.get("stats_episodes", 0))
    if counted < n:
        problems.append(Problem("warning", f"normalization statistics cover {counted} of {n} episodes; "
                                           "the next writer to open the store catches up (`robot-rl data stats PATH --update` does it now)"))
    return problems


def _check_info(root, n: int) -> list[Problem]:
    info = root["meta/episode_info"]
    if info.shape[0] < n:
        return [Problem("error", f"meta/episode_info has {info.shape[0]} entries for {n} committed episodes")]
    bad = []
    for i, doc in enumerate(info[:n]):
        try:
            json.loads(str(doc))
        except json.JSONDecodeError:
            bad.append(i)
    return [Problem("error", f"episode metadata of episodes {bad} is not valid JSON")] if bad else []


def _check_chunks(key, array, spec, committed, ends, url) -> list[Problem]:
    """Decode every chunk of the committed range: one problem per damaged chunk (a camera's shard
    file, a low-dimensional key's chunk of rows) naming its rows, what is wrong and the episodes hit."""
    problems = []
    if key in spec.cameras:
        frames = FrameReader(array, spec.cameras[key].codec, local_path(url))
        per_shard = frames.shard_frames
        for start in range(0, committed, per_shard):
            stop = min(start + per_shard, committed)
            try:
                frames.read(np.arange(start, stop))
                continue
            except StoreError:
                pass
            reasons, bad = collections.Counter(), []
            for index in range(start, stop):
                try:
                    frames.read(np.array([index]))
                except StoreError as e:
                    reasons[_frame_problem(str(e))] += 1
                    bad.append(index)
            what = ", ".join(f"{n} of {stop - start} frames {reason}" for reason, n in reasons.most_common())
            problems.append(_damaged_chunk(f"data/{key} shard {start // per_shard}", start, stop, what, ends, bad))
    else:
        rows = array.chunks[0]
        for start in range(0, committed, rows):
            stop = min(start + rows, committed)
            try:
                array[start:stop]
            except Exception as e:
                problems.append(_damaged_chunk(f"data/{key} chunk {start // rows}", start, stop,
                                               f"{type(e).__name__}: {e}", ends, range(start, stop)))
    return problems


ACTION_BOUND_TOLERANCE = 1e-5  # float32 rounding of an action computed at a bound


def _check_action_bounds(array, action_spec, committed: int, ends) -> list[Problem]:
    """Recorded actions outside the spec's ``low``/``high``: an error (nothing to check without bounds).

    The drivers' recorder keeps its executed actions within [-1, 1] (CommandArbiter.ee_delta clips the
    commanded pose's move, which a safety-filtered step can stretch past any action); this check is for
    every other writer (collect, import, a new driver), whose out-of-bounds actions no policy can output:
    the episode is wrong to train from, and the fix is its cause, then re-recording."""
    if committed == 0 or (action_spec.low is None and action_spec.high is None):
        return []
    low = -np.inf if action_spec.low is None else np.asarray(action_spec.low, dtype=float)
    high = np.inf if action_spec.high is None else np.asarray(action_spec.high, dtype=float)
    actions = np.asarray(array[:committed], dtype=float)
    outside = (actions < low - ACTION_BOUND_TOLERANCE) | (actions > high + ACTION_BOUND_TOLERANCE)
    if not outside.any():
        return []
    rows = np.flatnonzero(outside.any(axis=1))
    dims = np.flatnonzero(outside.any(axis=0)).tolist()
    episodes = np.unique(np.searchsorted(ends, rows, side="right")).tolist()
    return [Problem("error", (
        f"data/action: {len(rows)} of {committed} rows lie outside the spec's bounds [{action_spec.low}, "
        f"{action_spec.high}] (dims {dims}, from {actions[outside].min():.3g} to {actions[outside].max():.3g}), "
        f"in episodes {_ranges(episodes)}: no policy can output them. Find what wrote them (a converter's action "
        "scaling, a driver that records its own moves unclipped, a first target clipped into a safety box that "
        "does not hold the home pose), fix that, and re-record these episodes"))]


def _frame_problem(message: str) -> str:
    """What a FrameReader error says about one frame, without the frame number (shared by a shard)."""
    message = message.split(";")[0]
    if "is missing" in message:
        return "missing"
    if "the index of shard" in message:
        return "unreadable (the shard's index is damaged)"
    found = re.search(r"does not decode \((.*)\)$", message)
    return f"damaged ({found.group(1)})" if found else message


def _damaged_chunk(chunk: str, start: int, stop: int, what: str, ends, bad_rows) -> Problem:
    episodes = np.unique(np.searchsorted(ends, np.asarray(bad_rows), side="right")).tolist()
    return Problem("error", f"{chunk} (rows {start}..{stop - 1}): {what}; affects episodes {_ranges(episodes)}")


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    parts, first = [], None
    for i, v in enumerate(values):
        if first is None:
            first = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(first) if first == v else f"{first}-{v}")
            first = None
    return ", ".join(parts)


def _writer_active(url) -> bool:
    path = local_path(url)
    if path is None or not (path / LOCK_FILE).exists():
        return False
    fd = os.open(path / LOCK_FILE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def recover(url, *, mode: str, break_lock: bool = False) -> dict:
    """Settle an uncommitted tail: ``mode="salvage"`` commits it as an episode marked truncated and
    recovered, ``mode="drop"`` removes it. Committed episodes are never touched."""
    if break_lock:
        if local_path(url) is not None:
            raise StoreError("--break-lock is for remote stores: a local store's lock is released by "
                             "the kernel when its writer dies, so a held lock means a live writer")
        break_remote_lock(zarr_store(url, read_only=False))
    before = _tail_summary(url)
    with StoreWriter(url, on_tail=mode) as writer:
        return {**before, "episodes": writer.num_episodes, "steps": writer.num_steps}


def _tail_summary(url) -> dict:
    root = open_root(url, "r")
    record = read_commit_record(root, EmbodimentSpec.from_dict(root.attrs["spec"]).keys())
    return {"episodes_before": len(record.ends), "steps_before": record.steps, "tail_steps": record.tail}
