"""Deterministic episodes for store tests, and a writer entry point run as a subprocess:

    python tests/store_helpers.py PATH FIRST COUNT [SLEEP_S]

appends episodes FIRST..FIRST+COUNT-1 (creating the store if needed), printing ``committed i`` after
each commit, so a test can kill it at any moment and know what must have survived."""
from __future__ import annotations

import sys
import time

import numpy as np

from robot_rl.datasets import writer as writer_module
from robot_rl.datasets.spec import CameraSpec, EmbodimentSpec, KeySpec
from robot_rl.datasets.synthetic import SyntheticEpisodes
from robot_rl.datasets.writer import StoreWriter


def tiny_spec(codec: str = "zstd") -> EmbodimentSpec:
    return EmbodimentSpec(
        name="tiny", control_rate_hz=10.0,
        action=KeySpec((3,), "float32", "normalized", -1, 1),
        state={"state": KeySpec((14,), "float32", "rad")},
        cameras={"cam": CameraSpec(12, 16, codec=codec)},
    )


def episode_length(index: int) -> int:
    return 1 + (index * 7) % 23


def expected_episode(spec: EmbodimentSpec, index: int) -> dict[str, np.ndarray]:
    frames = list(SyntheticEpisodes(spec, seed=index).frames(episode_length(index), terminated=index % 3 == 0))
    return {k: np.stack([f[k] for f in frames]) for k in frames[0]}


def frames_of(spec: EmbodimentSpec, index: int):
    return SyntheticEpisodes(spec, seed=index).frames(episode_length(index), terminated=index % 3 == 0)


def write_episodes(path, first: int, count: int, sleep_s: float = 0.0, spec=None) -> None:
    spec = spec or tiny_spec()
    try:
        store = StoreWriter.create(path, spec)
    except Exception:
        store = StoreWriter(path)
    with store:
        for index in range(first, first + count):
            episode = store.new_episode(instruction=f"episode {index}", source="scripted")
            for frame in frames_of(spec, index):
                episode.add(frame)
                time.sleep(sleep_s)
            episode.commit(success=index % 2 == 0)
            print(f"committed {index}", flush=True)


if __name__ == "__main__":
    writer_module.BLOCK_BYTES = 4096  # flush every few frames, so a kill lands in every phase
    path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    write_episodes(path, first, count, float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)


def contents(path):
    """(every per-step key gathered over the whole store, each episode's info, the reader)."""
    from robot_rl.datasets import TrajectoryReader

    reader = TrajectoryReader(path)
    steps = np.arange(reader.num_steps)
    return ({k: reader.gather(k, steps) for k in reader.spec.keys()},
            [reader.episode_info(i) for i in range(reader.num_episodes)], reader)
