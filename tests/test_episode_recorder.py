"""The episode recorder's core without ROS (no rclpy here): a real zarr store on disk, real stream buffers,
and a simulated 5 Hz rig (observations, the twin task's status and the applied commands, stamped on a
simulated clock) in place of the ROS topics, which the node tests cover (tests/test_recorder_node.py).

Run as a script (``python tests/test_episode_recorder.py STORE``) it records two episodes, opens a third
and keeps recording it until it is killed: the SIGKILL test's subprocess."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.datasets import EmbodimentSpec, StoreError, TrajectoryReader, validate
from robot_rl.datasets.spec import CameraSpec, KeySpec
from robot_rl.drivers.episode_recorder import EpisodeRecorder, open_store
from robot_rl.drivers.stamped import AlignedStreams, StreamBuffer

PERIOD = 0.2  # s: the spec's 5 Hz control period
OBSERVATION_LEAD = 0.05  # s: each tick's observations are stamped this long before its command


def arm_spec(twin: bool) -> EmbodimentSpec:
    state = {"state": KeySpec((3,), "float32")}
    if twin:
        state["task_state"] = KeySpec((2,), "float32")
    return EmbodimentSpec("arm", 5.0, KeySpec((7,), "float32", low=-1.0, high=1.0), state=state,
                          cameras={"front": CameraSpec(4, 4)})


class Rig:
    """The recorder's inputs on a simulated clock. Each ``tick``: a fresh message on every live observation
    stream, the twin task's status (reward, success, failure, terminated) and one applied command, then the
    recorder's poll. Values encode the tick number, so a test can tell which message a row holds."""

    STREAMS = {"state": "joint_states", "task_state": "task_state", "front": "front/image_raw"}

    def __init__(self, store: Path, *, twin: bool = False, on_tail: str = "drop", **settings):
        self.spec = arm_spec(twin)
        self.t, self.step = 1000.0, 0
        self.buffers = {key: StreamBuffer(self.STREAMS[key]) for key in self.spec.obs_keys}
        self.live = {*self.buffers, "commands", "status"}
        self.status = (0.0, 0.0, 0.0, 0.0)
        self.logs: list[tuple[str, str]] = []
        self.resets = 0
        settings.setdefault("log", lambda level, message: self.logs.append((level, message)))
        writer, self.tail_note = open_store(store, self.spec, on_tail=on_tail)
        self.recorder = EpisodeRecorder(self.spec, writer, AlignedStreams(self.buffers, stale_after_s=0.5),
                                        clock=lambda: self.t, reset_task=self._reset, **settings)

    def _reset(self):
        self.resets += 1

    @staticmethod
    def action(step: int) -> np.ndarray:
        return np.array([step / 1000, 0, 0, 0, 0, 0, 1], np.float32)

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.t = round(self.t + PERIOD, 6)
            self.step += 1
            seen = self.t - OBSERVATION_LEAD
            values = {"state": np.full(3, self.step, np.float32), "task_state": np.full(2, -self.step, np.float32),
                      "front": np.full((4, 4, 3), self.step % 256, np.uint8)}
            for key, buffer in self.buffers.items():
                if key in self.live:
                    buffer.add(seen, values[key], received=seen + 0.001)
            if self.spec.state.get("task_state") and "status" in self.live:
                self.recorder.add_status(self.t, self.status, received=self.t + 0.001)
            if "commands" in self.live:
                self.recorder.add_command(self.t, self.action(self.step), received=self.t + 0.002)
            self.recorder.advance()

    def event(self, kind: str, after_last_tick: float = PERIOD / 2) -> float:
        """An episode event sent between ticks; its time."""
        t = self.t + after_last_tick
        self.recorder.event(kind, t)
        return t

    def close(self):
        self.recorder.close()


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "episodes.zarr"


def record(rig: Rig, ticks: int, ending: str = "stop") -> None:
    rig.event("start")
    rig.tick(ticks)
    rig.event(ending)
    rig.tick()  # the next command closes the episode


def test_the_core_imports_neither_rclpy_nor_mujoco():
    code = "import sys, robot_rl.drivers.episode_recorder; print(sorted({'rclpy', 'mujoco'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


# --- a full episode -------------------------------------------------------------------------------

def test_a_full_episode_pairs_each_applied_command_with_the_observation_before_it(store):
    rig = Rig(store, twin=True, instruction="reach it", source="scripted")
    rig.tick(3)
    first_step = rig.step + 1
    rig.status = (0.25, 0.0, 0.0, 0.0)
    record(rig, ticks=5)
    recorder = rig.recorder
    assert recorder.kept == 1 and not recorder.recording and recorder.discarded == 0
    rig.close()

    assert validate(store) == []
    reader = TrajectoryReader(store)
    assert reader.num_episodes == 1 and reader.spec == rig.spec
    episode, info = reader.episode(0), reader.episode_info(0)
    steps = np.arange(first_step, first_step + 5)
    np.testing.assert_allclose(episode["timestamp"], 1000.0 + PERIOD * steps)
    np.testing.assert_array_equal(episode["action"], np.stack([Rig.action(s) for s in steps]))
    np.testing.assert_array_equal(episode["state"][:, 0], steps, err_msg="the observation stamped before the row")
    np.testing.assert_array_equal(episode["task_state"][:, 0], -steps)
    np.testing.assert_array_equal(episode["front"][:, 0, 0, 0], steps)
    np.testing.assert_array_equal(episode["reward"], 0.25)
    assert episode["truncated"].tolist() == [False] * 4 + [True] and not episode["terminated"].any()
    assert info["instruction"] == "reach it" and info["source"] == "scripted" and info["ended_by"] == "stop"
    assert info["rows"] == 5 and info["command_rate_hz"] == 5.0 and info["leading_commands_skipped"] == 0
    assert info["success"] is False, "on the twin its task status decides"
    assert info["streams"] == ["joint_states", "task_state", "front/image_raw", "ee_command_applied", "task_status"]
    latency = info["latency_ms"]
    assert latency["joint_states"] == {"p50": 50.0, "p99": 50.0} and latency["ee_command_applied"]["p50"] == 2.0
    assert rig.resets == 1, "the twin task is redrawn as the episode ends"
    assert set(recorder.latency_percentiles_ms()) == set(latency)


def test_a_command_without_a_fresh_observation_after_the_start_is_skipped(store):
    rig = Rig(store)
    rig.tick(2)
    rig.event("start", after_last_tick=PERIOD - OBSERVATION_LEAD / 2)  # after the next tick's observations
    rig.tick(4)
    rig.event("stop")
    rig.tick()
    reader = TrajectoryReader(store)
    assert reader.episode_info(0)["leading_commands_skipped"] == 1 and reader.episode_info(0)["rows"] == 3
    np.testing.assert_array_equal(reader.episode(0)["state"][:, 0], [4, 5, 6])
    rig.close()


def test_the_twin_task_terminating_ends_the_episode_with_its_success(store):
    rig = Rig(store, twin=True)
    rig.tick(2)
    rig.event("start")
    rig.tick(3)
    rig.status = (1.0, 1.0, 0.0, 1.0)  # the next state is a success, terminating
    rig.tick(1)
    assert not rig.recorder.recording and rig.recorder.kept == 1
    reader = TrajectoryReader(store)
    episode = reader.episode(0)
    assert reader.episode_info(0)["ended_by"] == "terminated" and reader.episode_info(0)["success"] is True
    assert episode["terminated"].tolist() == [False, False, True] and episode["reward"].tolist() == [0, 0, 1]
    rig.close()


# --- discard and the operator's success label -------------------------------------------------------

def test_discard_drops_the_episode_and_the_next_one_is_episode_zero(store):
    rig = Rig(store)
    rig.tick(2)
    record(rig, ticks=4, ending="discard")
    assert rig.recorder.discarded == 1 and rig.recorder.kept == 0 and rig.recorder.writer.num_episodes == 0
    assert ("info", "episode discarded: discarded by the operator") in rig.logs
    assert validate(store) == [], "a discarded episode leaves no rows behind"
    first_kept = rig.step + 1
    record(rig, ticks=3)
    rig.close()
    reader = TrajectoryReader(store)
    assert reader.num_episodes == 1 and reader.episode_ends.tolist() == [3]
    assert reader.episode(0)["state"][0, 0] == first_kept


def test_on_hardware_the_operators_success_rewards_the_last_step_and_a_stop_does_not(store):
    rig = Rig(store)  # no task_state: hardware
    rig.tick(2)
    record(rig, ticks=4, ending="stop")
    record(rig, ticks=4, ending="success")
    rig.close()
    reader = TrajectoryReader(store)
    stopped, succeeded = reader.episode(0), reader.episode(1)
    assert reader.episode_info(0)["success"] is None and not stopped["terminated"].any()
    assert stopped["truncated"][-1]
    np.testing.assert_array_equal(stopped["reward"], 0.0)
    assert reader.episode_info(1)["success"] is True and reader.episode_info(1)["ended_by"] == "success"
    assert succeeded["reward"].tolist() == [0, 0, 0, 1]
    assert succeeded["terminated"].tolist() == [False, False, False, True] and not succeeded["truncated"].any()


def test_a_stop_without_an_episode_is_ignored_not_a_fault(store):
    rig = Rig(store)
    ok, message = rig.recorder.end(rig.t, discard=False)
    assert not ok and message == "stop ignored: no episode is being recorded"
    assert rig.recorder.last_problem == "" and rig.logs == [("warning", message)]
    rig.close()


# --- refusals and stale streams -------------------------------------------------------------------

def test_start_is_refused_naming_each_stale_stream(store):
    rig = Rig(store, twin=True)
    rig.live -= {"front", "status"}
    rig.tick(4)
    ok, message = rig.recorder.start(rig.t)
    assert not ok and rig.recorder.refused == 1 and not rig.recorder.recording
    assert "front/image_raw (no message yet)" in message and "task_status (no message yet)" in message, message
    assert "joint_states" not in message and "task_state (" not in message, message
    assert ("error", message) in rig.logs and rig.recorder.last_problem == message
    level, status_message, values = rig.recorder.status()
    assert level == "warn" and "front/image_raw" in status_message and values["starts_refused"] == 1
    assert values["state"] == "idle" and rig.recorder.writer.num_episodes == 0

    rig.live |= {"front", "status"}
    rig.tick(2)
    rig.live -= {"front"}
    rig.tick(3)  # 0.6 s: the camera's newest frame is older than stale_after_s
    ok, message = rig.recorder.start(rig.t)
    assert not ok and "front/image_raw (last message 0.65 s old)" in message, message
    rig.close()


def test_a_command_stream_off_the_control_rate_refuses_a_start(store):
    rig = Rig(store)
    rig.tick(2)
    for step in range(10):  # 10 Hz, the spec says 5
        rig.recorder.add_command(rig.t + 0.1 * step - 1.0, Rig.action(step))
    ok, message = rig.recorder.start(rig.t)
    assert not ok and "ee_command_applied arrives at 10.0 Hz, the spec's control rate is 5 Hz" in message
    rig.close()


def test_a_stream_going_stale_mid_episode_discards_it_naming_the_stream(store):
    rig = Rig(store)
    rig.tick(2)
    rig.event("start")
    rig.tick(3)
    rig.live -= {"state"}
    rig.tick(3)
    assert rig.recorder.discarded == 1 and not rig.recorder.recording
    assert "joint_states" in rig.recorder.last_problem and "stale" in rig.recorder.last_problem
    assert rig.recorder.writer.num_episodes == 0 and validate(store) == []
    rig.close()


def test_an_episode_without_applied_commands_is_discarded_naming_the_command_stream(store):
    rig = Rig(store)
    rig.live -= {"commands"}  # the driver's torque is off: nothing applied
    rig.tick(2)
    assert rig.recorder.start(rig.t)[0], "the command stream is checked from the start on, not before"
    rig.tick(3)
    assert rig.recorder.discarded == 1
    problem = rig.recorder.last_problem
    assert "ee_command_applied (no command applied since the episode started" in problem and "torque" in problem
    rig.close()


# --- limits ---------------------------------------------------------------------------------------

def test_max_steps_ends_each_episode_truncated_and_auto_start_opens_the_next(store):
    rig = Rig(store, twin=True, max_steps=3, max_episodes=2, auto_start=True)
    rig.tick(12)
    assert rig.recorder.done and rig.recorder.kept == 2 and rig.recorder.state == "done"
    rig.tick(3)
    assert rig.recorder.kept == 2 and not rig.recorder.recording, "no episode after the requested ones"
    rig.close()
    reader = TrajectoryReader(store)
    assert reader.episode_ends.tolist() == [3, 6]
    assert [reader.episode_info(i)["ended_by"] for i in range(2)] == ["max_steps", "max_steps"]
    assert reader.column("truncated").tolist() == [False, False, True] * 2
    assert rig.resets == 2


def test_the_episodes_limit_refuses_a_further_start_and_zero_means_no_limit(store, tmp_path):
    rig = Rig(store, max_episodes=2)
    rig.tick(2)
    record(rig, ticks=2)
    assert not rig.recorder.done
    record(rig, ticks=2)
    assert rig.recorder.done
    ok, message = rig.recorder.start(rig.t)
    assert not ok and message == "start refused: 2 episodes kept, the requested 2"
    rig.close()

    unlimited = Rig(tmp_path / "unlimited.zarr", max_episodes=0)
    unlimited.tick(2)
    for _ in range(3):
        record(unlimited, ticks=2)
    assert unlimited.recorder.kept == 3 and not unlimited.recorder.done
    unlimited.close()
    with pytest.raises(ValueError, match=r"max_episodes: expected a count of episodes, or 0 / None .* found -1"):
        Rig(tmp_path / "negative.zarr", max_episodes=-1)


# --- crash safety ---------------------------------------------------------------------------------

def record_until_killed(store: str) -> None:
    """The SIGKILL test's subprocess: two committed episodes, then a third recorded until the process dies
    (paced in real time, so the writer hands its rows to the store)."""
    rig = Rig(Path(store), log=lambda level, message: print(f"{level}: {message}", flush=True))
    rig.tick(2)
    record(rig, ticks=4)
    record(rig, ticks=5)
    rig.event("start")
    while True:
        rig.tick()
        time.sleep(0.02)


def test_sigkill_mid_episode_loses_only_the_open_episode(store):
    child = subprocess.Popen([sys.executable, __file__, str(store)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60.0
        while not _open_episode_on_disk(store, committed=2):
            assert child.poll() is None and time.monotonic() < deadline, "the recording process ended early"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10.0)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    log = child.stdout.read()
    assert child.returncode == -signal.SIGKILL and "episode 2 started" in log, log

    committed = TrajectoryReader(store)
    assert committed.episode_ends.tolist() == [4, 9], log
    kept = [committed.episode(i)["action"].copy() for i in range(2)]
    assert [p.message for p in validate(store) if p.severity == "error"] == []

    rig = Rig(store, on_tail="drop")  # the next recorder
    assert "were dropped" in rig.tail_note and rig.recorder.writer.num_episodes == 2
    rig.close()
    assert validate(store) == []
    after = TrajectoryReader(store)
    for index, actions in enumerate(kept):
        np.testing.assert_array_equal(after.episode(index)["action"], actions)


def _open_episode_on_disk(store: Path, committed: int) -> bool:
    """``committed`` episodes, and rows of the next one, are in the store on disk."""
    if not (store / "zarr.json").exists():
        return False
    try:
        return TrajectoryReader(store).num_episodes == committed and \
            any("after the last committed episode" in p.message for p in validate(store))
    except (OSError, ValueError, StoreError):  # a read racing the writer's metadata update: look again
        return False


if __name__ == "__main__":
    record_until_killed(sys.argv[1])


def test_the_rc_car_records_its_two_dimensional_action_from_its_spec(store):
    """The action's length comes from the robot's spec: the car's (steering, throttle), at its 20 Hz."""
    from robot_rl.sim.specs import embodiment_spec

    spec = embodiment_spec("rc_car")  # hardware: the 8-D state, no task_state
    buffers = {"state": StreamBuffer("joint_states")}
    writer, _ = open_store(store, spec, on_tail="drop")
    clock = [1000.0]
    recorder = EpisodeRecorder(spec, writer, AlignedStreams(buffers, stale_after_s=0.5), clock=lambda: clock[0],
                               log=lambda level, message: None)
    period = 1.0 / spec.control_rate_hz

    def tick(step: int) -> None:
        clock[0] = round(clock[0] + period, 6)
        buffers["state"].add(clock[0] - 0.01, np.full(8, step, np.float32), received=clock[0] - 0.009)
        recorder.add_command(clock[0], np.array([step / 100, -0.5], np.float32), received=clock[0] + 0.002)
        recorder.advance()

    for step in range(3):
        tick(step)
    recorder.event("start", clock[0] + period / 2)
    for step in range(3, 8):
        tick(step)
    recorder.event("stop", clock[0] + period / 2)
    tick(8)
    with pytest.raises(ValueError, match="expected 2 values"):
        recorder.add_command(clock[0], np.zeros(7, np.float32))  # an arm's 7-D action is not the car's
    assert recorder.kept == 1
    recorder.close()
    episode = TrajectoryReader(store).episode(0)
    np.testing.assert_allclose(episode["action"], [[s / 100, -0.5] for s in range(3, 8)], rtol=1e-6)
    np.testing.assert_array_equal(episode["state"][:, 0], np.arange(3, 8))
