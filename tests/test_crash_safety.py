"""SIGKILL a real writer process at random instants: committed episodes always survive intact."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.datasets.errors import UncommittedTailError
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.repair import recover, validate
from robot_rl.datasets.writer import StoreWriter
from store_helpers import expected_episode, tiny_spec, write_episodes

HELPER = Path(__file__).with_name("store_helpers.py")


def start_writer(path, first, count, sleep_s=0.002):
    return subprocess.Popen([sys.executable, str(HELPER), str(path), str(first), str(count), str(sleep_s)],
                            stdout=subprocess.PIPE, text=True)


def kill_after(process, seconds) -> list[int]:
    """Wait for the writer's first commit (start-up takes a while), then kill it ``seconds`` later."""
    first = process.stdout.readline()
    time.sleep(seconds)
    process.send_signal(signal.SIGKILL)
    out, _ = process.communicate()
    return [int(line.split()[1]) for line in (first + out).splitlines() if line.startswith("committed")]


def assert_episodes_intact(path, count):
    reader = TrajectoryReader(path)
    assert reader.num_episodes == count
    spec = tiny_spec()
    for index in range(count):
        episode = reader.episode(index)
        for key, values in expected_episode(spec, index).items():
            if key == "truncated" and reader.episode_info(index)["recovered"]:
                continue
            np.testing.assert_array_equal(episode[key], values, err_msg=f"episode {index} key {key}")


@pytest.mark.parametrize("trial", range(int(os.environ.get("ROBOT_RL_CRASH_TRIALS", "12"))))
def test_sigkill_at_a_random_instant_keeps_every_committed_episode(tmp_path, trial):
    rng = np.random.default_rng(trial)
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 2)  # the store exists before the kill window opens
    process = start_writer(path, 2, 1000)
    reported = kill_after(process, rng.uniform(0.0, 0.6))
    survivors = TrajectoryReader(path).num_episodes
    # Everything the writer reported is there; at most one more (killed after commit, before print).
    assert reported[-1] + 1 <= survivors <= reported[-1] + 2
    assert not [p for p in validate(path) if p.severity == "error"]
    assert_episodes_intact(path, survivors)

    mode = "salvage" if trial % 2 else "drop"
    try:
        StoreWriter(path).close()
        refused = False
    except UncommittedTailError:
        refused = True
    result = recover(path, mode=mode)
    assert refused == (result["tail_steps"] > 0)  # a writer never silently builds on a crashed tail
    assert result["episodes_before"] == survivors
    assert validate(path) == []
    reader = TrajectoryReader(path)
    if mode == "salvage" and result["tail_steps"] > 0 and reader.num_episodes > survivors:
        info = reader.episode_info(survivors)
        assert info["recovered"] and info["instruction"] == f"episode {survivors}"
        salvaged = reader.episode(survivors)
        assert salvaged["terminated"][-1] or salvaged["truncated"][-1]
        expected = expected_episode(tiny_spec(), survivors)
        n = len(salvaged["state"])
        np.testing.assert_array_equal(salvaged["state"], expected["state"][:n])  # a true prefix
    else:
        assert reader.num_episodes == survivors
    # The store takes new episodes after recovery.
    write_episodes(path, 500, 1)
    assert TrajectoryReader(path).num_episodes == reader.num_episodes + 1


def test_a_killed_writer_releases_its_lock(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 1)
    process = start_writer(path, 1, 1000)
    kill_after(process, 0.5)
    recover(path, mode="drop")  # would raise StoreLockedError if the lock had outlived its holder
