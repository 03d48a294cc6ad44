"""Where a run's shared state lives: the online stores and the checkpoints, the only things the learner
and the actors exchange. By default the run folder (one machine, or a mount they share); with
``object_store=s3://bucket/prefix`` (``gs://``, ``az://``) under that URL, so an actor on another machine
needs only the URL and credentials in its environment. Logs, TensorBoard events, evaluations, the
heartbeat and the report stay in the run folder of the machine that writes them.

A root is a local ``Path`` or a URL ``str``; names are joined with "/" for both.
"""
from __future__ import annotations

import os
from pathlib import Path


def shared_root(cfg, run_dir) -> Path | str:
    url = cfg.get("object_store")
    return str(url).rstrip("/") if url else Path(run_dir)


def child(root: Path | str, name: str) -> Path | str:
    return f"{root.rstrip('/')}/{name}" if isinstance(root, str) and "://" in root else Path(root) / name


def parent(location: Path | str) -> Path | str:
    if isinstance(location, str) and "://" in location:
        return location.rstrip("/").rsplit("/", 1)[0]
    return Path(location).parent


def checkpoints_folder(root: Path | str) -> Path | str:
    return child(root, "checkpoints")


def as_root(location: str | os.PathLike) -> Path | str:
    """A root from a command-line string: a URL stays a string, a path becomes a Path."""
    text = os.fspath(location)
    return text.rstrip("/") if "://" in text else Path(text)
