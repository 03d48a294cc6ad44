"""The `robot-rl data` verbs, run as a user runs them: a real console command in a subprocess."""
import subprocess
import sys

import numpy as np

from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.writer import StoreWriter
from store_helpers import frames_of, tiny_spec, write_episodes


def robot_rl(*args):
    return subprocess.run([sys.executable, "-m", "robot_rl.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def leave_uncommitted_tail(path, episode_index):
    """Record part of an episode and stop the way a crash does: no commit, no discard, no close
    (the crash-safety tests do the same with a real SIGKILL)."""
    store = StoreWriter(path)
    episode = store.new_episode(instruction="interrupted")
    for _ in range(60):  # longer than one flush block
        for frame in frames_of(tiny_spec(), episode_index):
            episode.add({**frame, "terminated": False, "truncated": False})
    store._flusher.wait()
    store._flusher.stop()
    store._lock.release()


def test_synth_info_stats(tmp_path):
    path = tmp_path / "s.zarr"
    out = robot_rl("data", "synth", path, "--episodes", 3, "--length", 10, "--size", "16x16")
    assert out.returncode == 0, out.stderr
    info = robot_rl("data", "info", path)
    assert info.returncode == 0 and "episodes" in info.stdout and "30" in info.stdout
    stats = robot_rl("data", "stats", path)
    assert stats.returncode == 0 and "reward" in stats.stdout and "p99" in stats.stdout
    refused = robot_rl("data", "synth", path, "--episodes", 1)
    assert refused.returncode == 2 and "already exists" in refused.stderr


def test_recover_salvage_then_validate(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 2)
    leave_uncommitted_tail(path, 4)
    check = robot_rl("data", "validate", path)
    assert check.returncode == 0 and "recover" in check.stdout and "--salvage" in check.stdout
    assert "Committed episodes are intact" in robot_rl("data", "stats", path, "--update").stderr
    out = robot_rl("data", "recover", path, "--salvage")
    assert out.returncode == 0 and "salvaged 1 episode" in out.stdout, out.stdout + out.stderr
    reader = TrajectoryReader(path)
    assert reader.num_episodes == 3 and reader.episode_info(2)["recovered"]
    assert reader.episode_info(2)["instruction"] == "interrupted"
    assert robot_rl("data", "validate", path).returncode == 0


def test_recover_drop(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 1)
    leave_uncommitted_tail(path, 4)
    out = robot_rl("data", "recover", path, "--drop")
    assert out.returncode == 0 and "dropped" in out.stdout
    assert TrajectoryReader(path).num_episodes == 1
    assert "is sound" in robot_rl("data", "validate", path).stdout


def test_copy_re_encodes_cameras_and_keeps_everything_else(tmp_path):
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    write_episodes(src, 0, 4)
    out = robot_rl("data", "copy", src, dst, "--codec", "raw")
    assert out.returncode == 0 and "copied 4 episodes" in out.stdout, out.stderr
    a, b = TrajectoryReader(src), TrajectoryReader(dst)
    assert b.spec.cameras["cam"].codec == "raw" and b.spec.state == a.spec.state
    assert b.episode_ends.tolist() == a.episode_ends.tolist()
    for index in range(4):
        assert b.episode_info(index) == a.episode_info(index)
        for key, values in a.episode(index).items():
            np.testing.assert_array_equal(b.episode(index)[key], values, err_msg=key)
    assert b.stats()["state"]["count"] == a.stats()["state"]["count"]
    assert robot_rl("data", "validate", dst).returncode == 0
