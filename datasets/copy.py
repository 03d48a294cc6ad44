"""Copy a store episode by episode, optionally re-encoding its cameras: keep the archival zstd store,
train from an lz4 or raw copy (several times faster to sample from disk, see the store benchmark)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.writer import StoreWriter

STEPS_PER_READ = 256  # bounded memory, however long an episode is


def copy_store(src, dst, *, codec: str | None = None, overwrite: bool = False,
               on_episode: Callable[[int, int], None] | None = None) -> int:
    """Write every committed episode of ``src`` into a new store ``dst`` with the same spec (camera
    codecs replaced by ``codec`` if given) and metadata. Returns the number of episodes copied;
    ``on_episode(done, total)`` reports progress."""
    reader = TrajectoryReader(src)
    spec = reader.spec
    if codec is not None:
        spec = dataclasses.replace(spec, cameras={name: dataclasses.replace(cam, codec=codec)
                                                  for name, cam in spec.cameras.items()})
    starts = np.concatenate([[0], reader.episode_ends[:-1]])
    with StoreWriter.create(dst, spec, overwrite=overwrite) as writer:
        for index, (start, end) in enumerate(zip(starts.tolist(), reader.episode_ends.tolist())):
            info = reader.episode_info(index)
            episode = writer.new_episode(**info)
            for first in range(start, end, STEPS_PER_READ):
                steps = np.arange(first, min(first + STEPS_PER_READ, end))
                rows = {key: reader.gather(key, steps) for key in spec.keys()}
                for t in range(len(steps)):
                    episode.add({key: values[t] for key, values in rows.items()})
            episode.commit(success=info["success"])
            if on_episode:
                on_episode(index + 1, reader.num_episodes)
    return reader.num_episodes
