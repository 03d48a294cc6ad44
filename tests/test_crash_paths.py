"""Crash paths with real processes and a real zarr store: a writer SIGKILLed mid-episode keeps, through
`robot-rl data recover --salvage`, every step it received more than a flush interval before the kill; the
actor's heartbeat tells the learner whether an actor is alive (the finetune jobs themselves are killed in
tests/test_finetune.py).

Run as a script, this file is the writer under test:

    python tests/test_crash_paths.py PATH LENGTH PACE_S FLUSH_S

records episodes of LENGTH steps, one every PACE_S seconds, with the writer's flush interval FLUSH_S,
printing ``added EPISODE STEP`` after each add and ``committed EPISODE`` after each commit.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.repair import recover, validate
from robot_rl.datasets.synthetic import SyntheticEpisodes
from robot_rl.learner.heartbeat import ActorStatus, Heartbeat, actor_status, learner_finished
from store_helpers import tiny_spec, write_episodes  # tests/ is on the path: pytest's, or the script's own

FLUSH_S = 0.2
WRITE_SLACK_S = 0.5  # one block's write on a loaded two-core machine (the guarantee is interval + a write)


def episode_frames(index: int, length: int) -> list[dict]:
    return list(SyntheticEpisodes(tiny_spec(), seed=index).frames(length, terminated=False))


def record_forever(path: str, length: int, pace_s: float, flush_s: float) -> None:
    from robot_rl.datasets import writer as writer_module
    from robot_rl.datasets.writer import StoreWriter

    writer_module.FLUSH_INTERVAL_S = flush_s
    with StoreWriter.open_or_create(path, tiny_spec()) as store:
        index = store.num_episodes
        while True:
            episode = store.new_episode(instruction=f"episode {index}", source="scripted")
            for step, frame in enumerate(episode_frames(index, length)):
                episode.add(frame)
                print(f"added {index} {step}", flush=True)
                time.sleep(pace_s)
            episode.commit()
            print(f"committed {index}", flush=True)
            index += 1


class WriterProcess:
    """The writer script in a subprocess, with the time each of its lines was read here (a step read at
    time t reached the writer before t)."""

    def __init__(self, path: Path, length: int, pace_s: float):
        self.popen = subprocess.Popen([sys.executable, __file__, str(path), str(length), str(pace_s), str(FLUSH_S)],
                                      stdout=subprocess.PIPE, text=True)
        self.lines: list[tuple[float, str]] = []
        self.first_line = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append((time.monotonic(), line.strip()))
            self.first_line.set()

    def kill_after(self, seconds: float) -> float:
        assert self.first_line.wait(60), "the writer never started"
        time.sleep(seconds)
        killed_at = time.monotonic()
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)
        self.reader.join(timeout=10)
        return killed_at

    def steps_added_before(self, episode: int, instant: float) -> int:
        return sum(1 for at, line in self.lines if line.split()[:2] == ["added", str(episode)] and at < instant)


@pytest.mark.parametrize("trial", range(8))
def test_salvage_keeps_every_step_received_a_flush_interval_before_the_kill(tmp_path, trial):
    rng = np.random.default_rng(trial)
    length, pace_s = (10, 0.12) if trial % 2 else (400, 0.01)  # short episodes, and long ones (> 1 block)
    path = tmp_path / "s.zarr"
    writer = WriterProcess(path, length, pace_s)
    killed_at = writer.kill_after(rng.uniform(0.8, 3.0))
    committed = TrajectoryReader(path).num_episodes
    must_keep = writer.steps_added_before(committed, killed_at - FLUSH_S - WRITE_SLACK_S)

    result = recover(path, mode="salvage")
    reader = TrajectoryReader(path)
    kept = result["steps"] - result["steps_before"]
    assert kept >= must_keep, f"salvaged {kept} of the {must_keep} steps received in time ({result})"
    assert validate(path) == []
    if kept:
        salvaged = reader.episode(committed)
        assert reader.episode_info(committed)["recovered"] and salvaged["truncated"][-1]
        expected = episode_frames(committed, length)[:kept]
        for key in ("state", "action", "cam", "timestamp"):
            np.testing.assert_array_equal(salvaged[key], np.stack([f[key] for f in expected]), err_msg=key)
    for index in range(committed):  # the committed episodes are untouched
        np.testing.assert_array_equal(reader.episode(index)["state"],
                                      np.stack([f["state"] for f in episode_frames(index, length)]))


def leave_written_tail(path: Path, *, marked: bool) -> None:
    """One committed episode, then 30 steps written and stopped the way a SIGKILL stops a writer (no
    commit, no close). ``marked=False`` leaves them without the ``flushed`` mark, as a kill between a
    block's data and its mark does (that window is microseconds wide: made deterministic here)."""
    from robot_rl.datasets.writer import StoreWriter

    write_episodes(path, 0, 1)
    store = StoreWriter(path)
    episode = store.new_episode(instruction="interrupted")
    for frame in episode_frames(7, 30):
        episode.add(frame)
    with episode._block_lock:
        episode._hand_off(holds_room=False)
    store._flusher.wait()
    if not marked:
        store._data.attrs.update({"flushed": store.num_steps})
    store._flusher.stop()
    store._lock.release()


def robot_rl(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robot_rl.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_salvage_says_plainly_when_nothing_can_be_kept(tmp_path):
    """Rows on disk that no flush marked as written (the writer died writing them): nothing is kept,
    and the verb says so and exits 1."""
    path = tmp_path / "s.zarr"
    leave_written_tail(path, marked=False)
    out = robot_rl("data", "recover", path, "--salvage")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "nothing could be salvaged" in out.stderr and "committed episodes are intact" in out.stderr
    assert TrajectoryReader(path).num_episodes == 1 and validate(path) == []


def test_salvage_names_the_steps_it_had_to_drop(tmp_path):
    path = tmp_path / "s.zarr"
    leave_written_tail(path, marked=True)
    out = robot_rl("data", "recover", path, "--salvage")
    assert out.returncode == 0 and "salvaged 1 episode" in out.stdout, out.stdout + out.stderr
    assert TrajectoryReader(path).num_episodes == 2


def write_checkpoint_state(run: Path, name: str, finished: bool) -> None:
    """The part of a learner's checkpoint the actor side reads: checkpoints/latest -> <name>/state.json."""
    (run / "checkpoints" / name).mkdir(parents=True)
    (run / "checkpoints" / name / "state.json").write_text(json.dumps(
        {"env_steps": 0, "actor": {"acting": True, "finished": finished}}))
    (run / "checkpoints" / "latest").write_text(name)


def test_the_heartbeat_tells_alive_from_stopped_from_silent(tmp_path):
    assert actor_status(tmp_path) == ActorStatus(False, "no actor has started in this run folder")
    beat = Heartbeat(tmp_path, "fast twin")
    beat.beat("acting")
    status = actor_status(tmp_path)
    assert status.alive and f"pid {os.getpid()}" in status.description and "acting" in status.description
    assert not actor_status(tmp_path, stale_s=-1.0).alive  # silent for longer than stale_s
    assert "has not been heard from" in actor_status(tmp_path, stale_s=-1.0).description
    beat.stop("the learner finished")
    status = actor_status(tmp_path)
    assert not status.alive and "stopped" in status.description and "the learner finished" in status.description


def test_the_ros_actor_graphs_heartbeat_process_beats_and_ends_the_graph_when_the_learner_finished(tmp_path):
    """The watcher the ROS actor graph runs: a real process beating until the learner's newest checkpoint
    says finished, then exiting 0 (its exit completes a `role=actor` graph)."""
    write_checkpoint_state(tmp_path, "step_1", finished=False)
    watcher = subprocess.Popen([sys.executable, "-m", "robot_rl.learner.heartbeat", "--run-dir", str(tmp_path),
                                "--exit-when-finished"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not actor_status(tmp_path).alive:
            assert time.monotonic() < deadline and watcher.poll() is None, "no heartbeat"
            time.sleep(0.05)
        assert "the ros actor" in actor_status(tmp_path).description
        write_checkpoint_state(tmp_path, "step_2", finished=True)
        assert watcher.wait(timeout=30) == 0
    finally:
        watcher.kill()
    assert not actor_status(tmp_path).alive and "the learner finished" in actor_status(tmp_path).description
    assert learner_finished(tmp_path)


if __name__ == "__main__":
    record_forever(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
