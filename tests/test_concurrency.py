"""A reader process samples while a writer process appends: it only ever sees whole episodes."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.samplers import TransitionSampler
from store_helpers import expected_episode, tiny_spec, write_episodes

HELPER = Path(__file__).with_name("store_helpers.py")


def test_reader_tails_a_store_being_written_and_never_sees_a_partial_episode(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 1)
    spec = tiny_spec()
    writer = subprocess.Popen([sys.executable, str(HELPER), str(path), "1", "40", "0.001"],
                              stdout=subprocess.DEVNULL)
    reader = TrajectoryReader(path)
    sampler = TransitionSampler(reader, 64, n_step=3, seed=0)
    counts_seen, checked = set(), 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = writer.poll() is not None
        reader.refresh()
        batch = sampler.sample()
        assert batch["index"].max() < reader.num_steps
        for index in range(checked, reader.num_episodes):  # every visible episode is complete
            episode = reader.episode(index)
            for key, values in expected_episode(spec, index).items():
                np.testing.assert_array_equal(episode[key], values, err_msg=f"episode {index} {key}")
        checked = reader.num_episodes
        counts_seen.add(reader.num_episodes)
        if done:
            break
    assert writer.wait() == 0
    reader.refresh()
    assert reader.num_episodes == 41
    assert len(counts_seen) > 3, f"the reader never caught the writer mid-run: {sorted(counts_seen)}"
