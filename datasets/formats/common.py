"""What every converter shares: optional readers imported on use, importing through a staging store so a
bad input never touches the destination, and reading a store's episodes in bounded blocks."""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from robot_rl.datasets.errors import SpecMismatchError, StoreError
from robot_rl.datasets.layout import local_path, store_exists
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.datasets.writer import StoreWriter

STEPS_PER_READ = 256  # rows read from a store at once: bounded memory whatever the episode length
Progress = Callable[[int, int], None]  # (frames done, frames in all)


def require(module: str, package: str | None = None):
    """Import an optional reader, or fail with the one line that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise StoreError(f"this converter needs {package or module} ({e.name} is missing): "
                         "pip install 'robot-rl[formats]'") from e


def episode_blocks(reader: TrajectoryReader, index: int, keys=None) -> Iterator[dict[str, np.ndarray]]:
    """The rows of committed episode ``index``, every key (or ``keys``), ``STEPS_PER_READ`` at a time."""
    start = int(reader.episode_ends[index - 1]) if index else 0
    end = int(reader.episode_ends[index])
    for first in range(start, end, STEPS_PER_READ):
        steps = np.arange(first, min(first + STEPS_PER_READ, end))
        yield {key: reader.gather(key, steps) for key in (keys or reader.spec.keys())}


def same_spec(a: EmbodimentSpec, b: EmbodimentSpec) -> bool:
    return json.loads(json.dumps(a.to_dict())) == json.loads(json.dumps(b.to_dict()))


def check_destination(dst, spec: EmbodimentSpec, overwrite: bool) -> None:
    """Refuse, before reading any input, a destination store whose spec differs from ``spec``."""
    if overwrite or not store_exists(dst):
        return
    found = TrajectoryReader(dst).spec
    if not same_spec(found, spec):
        a, b = found.to_dict(), json.loads(json.dumps(spec.to_dict()))
        differ = sorted(k for k in a if json.loads(json.dumps(a[k])) != b.get(k))
        raise SpecMismatchError(
            f"{dst} holds episodes of another embodiment spec (differs in {differ}: store "
            f"{ {k: a[k] for k in differ} }, input { {k: b[k] for k in differ} }): import into a new store, "
            "or pass --overwrite to replace it")


@contextlib.contextmanager
def staged_import(dst, spec: EmbodimentSpec, *, overwrite: bool = False) -> Iterator[StoreWriter]:
    """A writer on a staging store beside ``dst``. On success the staged episodes become ``dst`` (a new
    store: renamed into place) or are appended to it (an existing store of the same spec); on any error
    the staging store is removed and ``dst`` is exactly as it was."""
    path = local_path(dst)
    if path is None:
        raise StoreError(f"{dst}: imports write local stores; import locally, then `robot-rl data copy` it")
    check_destination(dst, spec, overwrite)
    staging = path.parent / f".{path.name}.importing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        writer = StoreWriter.create(staging, spec, durable=False)
        try:
            yield writer
        finally:
            writer.close()
        if overwrite or not store_exists(dst):
            if path.exists():
                shutil.rmtree(path)
            staging.rename(path)
        else:
            append_store(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def append_store(src, dst) -> int:
    """Append every committed episode of ``src`` to the store ``dst`` (same spec); returns the count."""
    reader = TrajectoryReader(src)
    with StoreWriter(dst) as writer:
        for index in range(reader.num_episodes):
            info, success = episode_kwargs(reader.episode_info(index))
            episode = writer.new_episode(**info)
            for block in episode_blocks(reader, index):
                for t in range(len(block["timestamp"])):
                    episode.add({key: values[t] for key, values in block.items()})
            episode.commit(success=success)
    return reader.num_episodes


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, overwrite: bool) -> Iterator[Path]:
    """A temporary path beside ``out`` that becomes ``out`` on success and is removed on error."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise StoreError(f"{out} already exists: choose another path, or pass --overwrite to replace it")
    tmp = out.parent / f".{out.name}.exporting-{os.getpid()}"
    _remove(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
        _remove(out)
        tmp.rename(out)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def episode_kwargs(info: dict) -> tuple[dict, bool | None]:
    """A stored episode's info as ``new_episode`` keywords (every key kept: the given ones override the
    writer's own), and its success label for ``commit``."""
    info = dict(info)
    return info, info.pop("success", None)
