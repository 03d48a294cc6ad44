"""Where things live inside a store, and how a store is opened.

A store is one zarr 3 group::

    <root>/                   attrs: robot_rl_format, spec (EmbodimentSpec as JSON)
      data/<key>              every per-step key concatenated along time; images one frame per chunk
                              attrs: flushed (rows fully written), pending_episode (info of the
                              episode being recorded, for `recover`)
      meta/episode_ends       int64, cumulative exclusive end of every committed episode
      meta/episode_info       one JSON document per committed episode
      meta/stats_sample/<key> a fixed-size uniform row sample per low-dimensional key (percentiles)
                              meta attrs: stats (count, mean, m2, min, max per key), stats_episodes

The commit record is ``meta/episode_ends``: an episode exists once its end is written, and its end is
written last. zarr 3.1's LocalStore replaces every file atomically (write, then rename), so a process
killed at any instant leaves each file either old or new; readers trust only the longest strictly
increasing prefix of ``episode_ends`` that the data arrays cover.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import LocalStore

from robot_rl.datasets.errors import FormatVersionError, NotAStoreError, StoreError

FORMAT_VERSION = 1
FORMAT_ATTR = "robot_rl_format"
LOCK_FILE = "writer.lock"
COMMIT_CHUNK = 4096
LOWDIM_CHUNK_ROWS = 4096


def local_path(url: str | os.PathLike) -> Path | None:
    """The folder of a local store, or None for a remote (fsspec) URL."""
    url = os.fspath(url)
    if url.startswith("file://"):
        return Path(url[len("file://"):])
    return None if "://" in url else Path(url)


OBJECT_STORE_SCHEMES = ("s3://", "gs://", "az://")


def zarr_store(url: str | os.PathLike, read_only: bool):
    """The zarr store at ``url``: a local folder, an object store (``s3://``, ``gs://``, ``az://``, through
    obstore: credentials, region and endpoint from the environment, e.g. ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``; ``AWS_ALLOW_HTTP=true`` for a plain-http endpoint), or
    any other fsspec URL (``memory://``)."""
    path = local_path(url)
    if path is not None:
        return LocalStore(path, read_only=read_only)
    if os.fspath(url).startswith(OBJECT_STORE_SCHEMES):
        return object_store(os.fspath(url), read_only)
    try:
        from zarr.storage import FsspecStore
        return FsspecStore.from_url(os.fspath(url), read_only=read_only)
    except ImportError as e:
        raise StoreError(
            f"opening {url!r} needs the remote-storage packages ({e.name} is missing): "
            "pip install 'robot-rl[cloud]'") from e


def object_store(url: str, read_only: bool):
    """An object store through obstore, whose conditional put makes the writer lock atomic there."""
    try:
        from obstore.store import from_url
    except ImportError as e:
        raise StoreError(f"opening {url!r} needs obstore (the `cloud` extra): pip install 'robot-rl[cloud]'") from e
    from zarr.storage import ObjectStore

    try:
        return ObjectStore(from_url(url), read_only=read_only)
    except Exception as e:  # obstore's configuration errors: a missing region, a malformed endpoint
        raise StoreError(f"{url}: the object store cannot be configured ({e}); set AWS_REGION, AWS_ENDPOINT_URL "
                         "and the credentials in the environment") from e


def list_children(url: str | os.PathLike) -> list[str]:
    """The names directly inside a local folder or an object-store prefix (none if it does not exist)."""
    path = local_path(url)
    if path is not None:
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    import obstore
    from obstore.store import from_url

    listing = obstore.list_with_delimiter(from_url(os.fspath(url).rstrip("/")))
    return sorted({p.rstrip("/").rsplit("/", 1)[-1] for p in listing["common_prefixes"]})


def store_exists(url: str | os.PathLike) -> bool:
    """Whether something is already at ``url`` (a non-empty local folder, or a remote store)."""
    path = local_path(url)
    if path is not None:
        return path.is_dir() and any(path.iterdir())
    try:
        open_root(url)
    except NotAStoreError:
        return False
    return True


def open_root(url: str | os.PathLike, mode: str = "r") -> zarr.Group:
    """Open an existing store's root group, checking it is a store this version can read."""
    path = local_path(url)
    if path is not None and not path.exists():
        raise NotAStoreError(f"{url}: no such store; check the path, or record one first")
    if path is not None and not path.is_dir():
        raise NotAStoreError(f"{url} is a file, not a store (a store is a folder); check the path")
    try:
        root = zarr.open_group(zarr_store(url, read_only=(mode == "r")), mode="r" if mode == "r" else "r+")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError) as e:
        raise NotAStoreError(f"{url} is not a zarr group, so not a robot_rl store ({e})") from e
    version = root.attrs.get(FORMAT_ATTR)
    if version is None:
        raise NotAStoreError(
            f"{url} is a zarr group but not a robot_rl trajectory store "
            f"(no {FORMAT_ATTR!r} attribute); convert it with the robot-rl converters")
    if int(version) > FORMAT_VERSION:
        raise FormatVersionError(
            f"{url} was written in store format {version}; this robot-rl reads formats up to "
            f"{FORMAT_VERSION}: upgrade robot-rl to read it (nothing was changed)")
    return root


@dataclass(frozen=True)
class CommitRecord:
    """What ``meta/episode_ends`` and the data arrays' lengths say, read once."""

    ends: np.ndarray  # int64 ends of the committed episodes
    entries: int  # entries in meta/episode_ends; those past the committed ones are interrupted commits
    shortest: int  # rows of the shortest and the longest data array
    longest: int

    @property
    def steps(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    @property
    def tail(self) -> int:
        """Rows written after the last commit (by a writer that stopped mid-episode)."""
        return self.longest - self.steps


def read_commit_record(root: zarr.Group, keys) -> CommitRecord:
    """The committed episodes: the longest strictly increasing prefix of positive ends that every
    data array covers."""
    lengths = [root[f"data/{key}"].shape[0] for key in keys]
    ends = np.asarray(root["meta/episode_ends"][:], dtype=np.int64)
    prev = np.concatenate([[0], ends[:-1]])
    bad = np.flatnonzero((ends <= prev) | (ends > min(lengths)))
    n = int(bad[0]) if len(bad) else len(ends)
    return CommitRecord(ends[:n], len(ends), min(lengths), max(lengths))
