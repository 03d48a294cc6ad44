"""Checkpoints on object storage (``s3://``, ``gs://``, ``az://``, through obstore: credentials and
endpoint from the environment, as for stores). robot_rl.learner.checkpoint calls this module when its
folder is such a URL; everything else sees an ordinary local checkpoint folder.

    <url>/step_.../model.safetensors, optimizer.safetensors, state.json, config.yaml, spec.json
    <url>/latest        the name of the newest complete checkpoint, written last

Writing: the checkpoint is saved in a local cache folder as usual (atomically), its files are uploaded,
and ``latest`` is put last. An object appears whole, so a reader that follows ``latest`` finds every
file of that checkpoint; checkpoints beyond ``keep`` are deleted after ``latest`` has moved. Reading:
``latest`` is fetched and the checkpoint it names is downloaded once into the cache (under a temporary
name, then renamed), whose path the loaders use.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from robot_rl.datasets.layout import OBJECT_STORE_SCHEMES

LATEST = "latest"
KEEP_CACHED = 3  # downloaded checkpoints kept in the cache


def is_remote(folder: str | os.PathLike) -> bool:
    return isinstance(folder, str) and folder.startswith(OBJECT_STORE_SCHEMES)


def cache_folder(url: str) -> Path:
    """The local copy of the checkpoints at ``url`` (``ROBOT_RL_CACHE``, default ~/.cache/robot_rl)."""
    root = Path(os.environ.get("ROBOT_RL_CACHE", Path.home() / ".cache" / "robot_rl"))
    return root / "checkpoints" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def _store(url: str):
    try:
        from obstore.store import from_url
    except ImportError as e:
        raise ImportError(f"checkpoints at {url} need obstore: pip install 'robot-rl[cloud]'") from e
    return from_url(url.rstrip("/"))


def publish(local: Path, url: str, keep: int) -> Path:
    """Upload the complete local checkpoint ``local``, point ``latest`` at it, prune; returns ``local``."""
    import obstore

    store = _store(url)
    for file in sorted(local.iterdir()):
        obstore.put(store, f"{local.name}/{file.name}", file.read_bytes())
    obstore.put(store, LATEST, local.name.encode())  # the commit point
    names = sorted({meta["path"].split("/")[0] for batch in obstore.list(store) for meta in batch
                    if meta["path"].startswith("step_")})
    for old in names[:-keep]:
        paths = [meta["path"] for batch in obstore.list(store, prefix=f"{old}/") for meta in batch]
        if paths:
            obstore.delete(store, paths)
    return local


def fetch_latest(url: str) -> Path | None:
    """The newest complete checkpoint at ``url``, as a local folder (downloaded once), or None."""
    import obstore

    store = _store(url)
    try:
        name = bytes(obstore.get(store, LATEST).bytes()).decode().strip()
    except FileNotFoundError:
        return None
    cache = cache_folder(url)
    local = cache / name
    if (local / "state.json").exists():
        return local
    tmp = cache / f".{name}.{os.getpid()}.download"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for batch in obstore.list(store, prefix=f"{name}/"):
            for meta in batch:
                (tmp / meta["path"].split("/", 1)[1]).write_bytes(bytes(obstore.get(store, meta["path"]).bytes()))
        if not (tmp / "state.json").exists():
            return None
        if not local.exists():
            os.replace(tmp, local)
    except FileNotFoundError:  # pruned while being read: ``latest`` names a newer one by now
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in sorted(p for p in cache.glob("step_*") if p.is_dir())[:-KEEP_CACHED]:
        shutil.rmtree(old, ignore_errors=True)
    return local
