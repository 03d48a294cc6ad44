"""The recorder node over real DDS on loopback, with the WidowX twin behind a real DriverNode, the twin task
node, a twin camera node and the scripted expert as teleop operator, writing a real zarr store on disk.

The recorder runs in the test process on the same executor as the other nodes, except in the shutdown
tests, where it is a process of its own (`python -m robot_rl.drivers.recorder_node`, and the README's
`robot-rl bringup teleop_collect`) stopped with SIGINT or SIGTERM. The episode logic itself (alignment,
discard, success labels, stale streams, limits, a SIGKILL mid-episode) is tested without ROS in
tests/test_episode_recorder.py.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from robot_rl.datasets import StoreError, TrajectoryReader, validate
from robot_rl.drivers.camera_node import twin_camera_node
from robot_rl.drivers.driver_node import COMMAND_QOS, DriverNode
from robot_rl.drivers.recorder_node import APPLIED_QOS, DIAGNOSTICS_QOS, RecorderNode
from robot_rl.drivers.safety import SafetyFilter, widowx_limits
from robot_rl.drivers.teleop import TELEOP_QOS, ScriptedTeleop, TeleopNode
from robot_rl.drivers.twin_task_node import TwinTaskNode
from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend
from robot_rl.sim.specs import embodiment_spec
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.control import DeltaPoseController
from ros_helpers import Spinner, wait_for

RATE_HZ = 5.0
_namespaces = itertools.count()


class RecorderSpinner(Spinner):
    """Closes every recorder (its store) and driver (torque off, backend) it spins."""

    def add(self, node, close=None):
        if close is None and isinstance(node, RecorderNode):
            close = node.close
        if close is None and isinstance(node, DriverNode):
            close = node.shutdown_backend
        return super().add(node, close)


@pytest.fixture
def spinner(context):
    spin = RecorderSpinner(context)
    yield spin
    spin.stop()


class Client(Node):
    """What an operator and a test look at: the applied commands, episode_control and the services."""

    def __init__(self, context, namespace):
        super().__init__("recorder_test_client", context=context, namespace=namespace)
        self._lock = threading.Lock()
        self.applied: list[JointState] = []
        self.create_subscription(JointState, "ee_command_applied", self._on_applied, APPLIED_QOS)
        self.events = self.create_publisher(String, "episode_control", TELEOP_QOS)
        self.commands = self.create_publisher(Float64MultiArray, "ee_delta_command", COMMAND_QOS)
        self.service_clients = {name: self.create_client(Trigger, name)
                                for name in ("start_episode", "stop_episode", "discard_episode", "reset_task")}
        self.diagnostics: dict[str, str] = {}
        self.create_subscription(DiagnosticArray, "diagnostics", self._on_diagnostics, DIAGNOSTICS_QOS)

    def _on_diagnostics(self, msg):
        with self._lock:
            self.diagnostics = {kv.key: kv.value for kv in msg.status[0].values}

    def recorder_value(self, key: str) -> str | None:
        """The recorder's newest diagnostics value ``key`` (state, rows_in_episode, episodes_in_store ...)."""
        with self._lock:
            return self.diagnostics.get(key)

    def _on_applied(self, msg):
        with self._lock:
            self.applied.append(msg)

    def applied_by_stamp(self) -> dict[float, np.ndarray]:
        with self._lock:
            return {m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec: np.array(m.position) for m in self.applied}

    def call(self, name: str):
        client = self.service_clients[name]
        assert client.wait_for_service(timeout_sec=5.0), f"service {name} not available"
        future = client.call_async(Trigger.Request())
        wait_for(future.done, 5.0, f"the {name} response")
        return future.result()


class CommandSource(Node):
    """A constant ee_delta_command at the control rate, like an idle teleop or a policy holding still."""

    def __init__(self, context, namespace, action=(0, 0, 0, 0, 0, 0, 1.0)):
        super().__init__("recorder_test_commands", context=context, namespace=namespace)
        self.action = [float(a) for a in action]
        self.pub = self.create_publisher(Float64MultiArray, "ee_delta_command", COMMAND_QOS)
        self.timer = self.create_timer(1.0 / RATE_HZ, lambda: self.pub.publish(Float64MultiArray(data=self.action)))


def namespace() -> str:
    return f"/recorder_test_{os.getpid()}_{next(_namespaces)}"


def twin_driver(spinner: Spinner, context, ns: str, task: str = "reach", seed: int = 8):
    backend = WidowXTwinBackend(task=task, seed=seed)
    backend.connect()
    spinner.backends.append(backend)
    safety = SafetyFilter(widowx_limits(control_period=1 / RATE_HZ), control_period=1 / RATE_HZ)
    driver = spinner.add(DriverNode(
        backend, safety, np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1]), ee_controller=DeltaPoseController(),
        opening_from_gripper=lambda finger: float(wx.width_to_opening(2 * finger)), context=context, namespace=ns))
    return backend, driver


def recorded_spec(task: str, cameras=(), twin: bool = True):
    return embodiment_spec("widowx", task if twin else None, tuple(cameras))


def assert_matches_spec(store: Path, spec) -> TrajectoryReader:
    problems = validate(store)
    assert problems == [], [p.message for p in problems]
    reader = TrajectoryReader(store)
    assert reader.spec.to_dict() == spec.to_dict()
    for key, key_spec in spec.keys().items():
        column = reader.column(key) if key not in spec.cameras else reader.episode(0)[key]
        assert column.shape[1:] == key_spec.shape and column.dtype == np.dtype(key_spec.dtype), key
    return reader


# --- a scripted teleop session --------------------------------------------------------------------

def test_scripted_teleop_session_records_valid_episodes_with_the_applied_actions(context, spinner, tmp_path):
    ns = namespace()
    backend, driver = twin_driver(spinner, context, ns, seed=8)
    assert driver.enable_torque(True)[0]
    spinner.add(TwinTaskNode(backend, rate_hz=20.0, context=context, namespace=ns))
    spinner.add(twin_camera_node(backend, "front", fps=10.0, context=context, namespace=ns))
    client = spinner.add(Client(context, ns))
    spec = recorded_spec("reach", ("front",))
    store = tmp_path / "teleop.zarr"
    recorder = spinner.add(RecorderNode(spec, store, instruction="reach it", source="scripted", max_episodes=2,
                                        context=context, namespace=ns))
    spinner.start()
    wait_for(lambda: not recorder.core.start_refusal(), 5.0, "every stream live")
    device = ScriptedTeleop.for_twin_backend(backend, episodes=2, seed=8, max_steps=6)
    spinner.add(TeleopNode(device, rate_hz=RATE_HZ, deadband=0.0, context=context, namespace=ns))
    wait_for(lambda: recorder.core.done, 20.0, "two kept episodes")
    applied = client.applied_by_stamp()

    reader = assert_matches_spec(store, spec)
    assert reader.num_episodes == 2 and recorder.core.discarded == 0
    sent = [steps for _, steps in device.outcomes]
    lengths = np.diff(np.concatenate([[0], reader.episode_ends])).tolist()
    skipped = [reader.episode_info(i)["leading_commands_skipped"] for i in range(2)]
    assert [n + k for n, k in zip(lengths, skipped)] == sent and max(skipped) <= 2, \
        f"rows per episode {lengths} (+ {skipped} leading commands skipped), actions the operator sent {sent}"
    for index in range(2):
        episode, info = reader.episode(index), reader.episode_info(index)
        stamps = episode["timestamp"]
        # One row per applied command, in order. Not spaced a period apart: a 5 Hz ROS timer that fires
        # late on a loaded host keeps its schedule, so its next tick (and command) can follow within ms.
        assert np.all(np.diff(stamps) > 0), "one row per command, in the order applied"
        for t, action in zip(stamps, episode["action"]):
            match = min(applied, key=lambda s: abs(s - t))
            assert abs(match - t) < 1e-6, f"row at {t} is not an applied command's stamp"
            np.testing.assert_allclose(action, applied[match].astype(np.float32), err_msg="recorded != applied")
        assert episode["truncated"][-1] and not episode["truncated"][:-1].any()
        assert not episode["terminated"].any(), "the twin task node does not terminate on success by default"
        assert np.all((episode["reward"] > 0) & (episode["reward"] <= 1)), "dense reach rewards"
        assert info["instruction"] == "reach it" and info["source"] == "scripted" and info["ended_by"] == "stop"
        assert set(info["latency_ms"]) == {"joint_states", "front/image_raw", "task_state", "task_status",
                                           "ee_command_applied"}
        assert 0 <= info["latency_ms"]["joint_states"]["p50"] < 25, info["latency_ms"]
        assert episode["front"].std() > 0, "camera frames are images, not zeros"
    first, second = reader.episode(0), reader.episode(1)
    assert not np.allclose(first["task_state"][0], second["task_state"][0]), "the second episode has a new task"
    assert np.allclose(second["task_state"], second["task_state"][0]), "a reach target stays put in an episode"
    print(f"\nrecorded {lengths} rows; latency p50/p99 ms: {reader.episode_info(1)['latency_ms']}")


# --- refusals, discard, automatic reset ---------------------------------------------------------

def test_start_is_refused_naming_each_stale_stream(context, spinner, tmp_path):
    ns = namespace()
    twin_driver(spinner, context, ns)  # joint_states only: no camera node, no twin task node
    client = spinner.add(Client(context, ns))
    spec = recorded_spec("reach", ("front",), twin=True)
    recorder = spinner.add(RecorderNode(spec, tmp_path / "s.zarr", context=context, namespace=ns))
    spinner.start()
    wait_for(lambda: recorder.core.observations.buffers["state"].last, 5.0, "joint_states")
    response = client.call("start_episode")
    assert not response.success
    for stream in ("front/image_raw (no message yet)", "task_state (no message yet)", "task_status (no message yet)"):
        assert stream in response.message, response.message
    assert "joint_states" not in response.message, response.message
    assert recorder.core.refused == 1 and recorder.core.last_problem.startswith("start refused")
    level, message, values = recorder.core.status()
    assert values["state"] == "idle" and level == "warn" and "front/image_raw" in message
    assert recorder.core.writer.num_episodes == 0


def test_discard_drops_the_episode_stop_keeps_it_and_the_twin_task_resets(context, spinner, tmp_path):
    ns = namespace()
    backend, driver = twin_driver(spinner, context, ns, seed=3)
    assert driver.enable_torque(True)[0]
    task = spinner.add(TwinTaskNode(backend, rate_hz=10.0, context=context, namespace=ns))
    spinner.add(CommandSource(context, ns))
    client = spinner.add(Client(context, ns))
    store = tmp_path / "d.zarr"
    recorder = spinner.add(RecorderNode(recorded_spec("reach"), store, context=context, namespace=ns))
    spinner.start()
    wait_for(lambda: not recorder.core.start_refusal(), 5.0, "every stream live")
    wait_for(lambda: client.service_clients["reset_task"].service_is_ready(), 5.0, "reset_task discovered")

    target_before, q_before = backend.env.target_pos, backend.read().position
    assert client.call("start_episode").success
    assert not client.call("start_episode").success, "a second start during an episode"
    wait_for(lambda: recorder.core.rows >= 3, 3.0, "rows")
    assert client.call("discard_episode").success
    wait_for(lambda: task.resets == 1, 3.0, "the reset after the discard")
    assert recorder.core.writer.num_episodes == 0 and recorder.core.discarded == 1
    assert np.linalg.norm(backend.env.target_pos - target_before) > 0.01, "the task was not redrawn"
    assert np.abs(backend.read().position - q_before).max() < 0.05, "the reset moved the robot"

    client.events.publish(String(data="start"))
    wait_for(lambda: recorder.core.recording and recorder.core.rows >= 3, 3.0, "rows of the second episode")
    client.events.publish(String(data="stop"))
    wait_for(lambda: recorder.core.kept == 1, 3.0, "the kept episode")
    reader = assert_matches_spec(store, recorded_spec("reach"))
    assert reader.num_episodes == 1 and reader.episode_info(0)["ended_by"] == "stop"
    np.testing.assert_allclose(reader.column("action")[:, 6], 1.0)
    np.testing.assert_allclose(reader.column("action")[:, :6], 0.0, atol=1e-6)


def test_auto_start_records_fixed_length_episodes_with_a_new_task_each(context, spinner, tmp_path):
    ns = namespace()
    backend, driver = twin_driver(spinner, context, ns, seed=5)
    assert driver.enable_torque(True)[0]
    task = spinner.add(TwinTaskNode(backend, rate_hz=10.0, context=context, namespace=ns))
    spinner.add(CommandSource(context, ns, action=(0.3, 0, 0, 0, 0, 0, 1.0)))  # a "policy" moving forward
    store = tmp_path / "online.zarr"
    recorder = spinner.add(RecorderNode(recorded_spec("reach"), store, source="policy", max_steps=3,
                                        max_episodes=2, auto_start=True, context=context, namespace=ns))
    spinner.start()
    wait_for(lambda: recorder.core.done, 10.0, "two automatic episodes")
    reader = assert_matches_spec(store, recorded_spec("reach"))
    assert reader.episode_ends.tolist() == [3, 6]
    assert [reader.episode_info(i)["ended_by"] for i in range(2)] == ["max_steps", "max_steps"]
    assert reader.column("truncated").tolist() == [False, False, True] * 2
    assert task.resets >= 1
    first, second = reader.episode(0)["task_state"][0], reader.episode(1)["task_state"][0]
    assert np.linalg.norm(first - second) > 0.01, "no new task between the automatic episodes"


# --- the recorder process: Ctrl-C and SIGTERM ----------------------------------------------------------

SHUTDOWN_FAILURES = ("Traceback", "context is invalid", "[ERROR]", "Failed to publish")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_the_recorder_process_exits_0_on_a_signal_keeping_committed_episodes_only(context, spinner, tmp_path, sig):
    ns = namespace()
    backend, driver = twin_driver(spinner, context, ns)
    assert driver.enable_torque(True)[0]
    spinner.add(CommandSource(context, ns))
    client = spinner.add(Client(context, ns))
    spinner.start()
    store = tmp_path / "signal.zarr"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.drivers.recorder_node", "--task", "reach", "--out", str(store),
         "--no-twin-task", "--name", "signal_recorder", "--ros-args", "-r", f"__ns:={ns}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: client.service_clients["start_episode"].service_is_ready(), 60.0, "the recorder process")
        wait_for(lambda: client.recorder_value("stale_streams") == "", 20.0, "every stream live at the recorder")
        for episode in (1, 2):
            response = client.call("start_episode")
            assert response.success, response.message
            # 30 s: a fresh process's first rows and commit wait on its first store writes; 10 s timed out once
            # on a loaded 2-core machine during the whole suite
            wait_for(lambda: int(client.recorder_value("rows_in_episode") or 0) >= 2, 30.0, "rows")
            if episode == 1:
                assert client.call("stop_episode").success
                wait_for(lambda: client.recorder_value("episodes_in_store") == "1", 30.0, "the first commit")
        recorder.send_signal(sig)  # mid-episode 2
        output, _ = recorder.communicate(timeout=30.0)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.communicate()
    assert recorder.returncode == 0, output
    assert not [f for f in SHUTDOWN_FAILURES if f in output], output
    assert "recorder: 1 episodes kept, 0 discarded" in output and "the episode in progress is discarded" in output
    assert validate(store) == [], "nothing of the open episode stays in the store"
    assert TrajectoryReader(store).num_episodes == 1


@pytest.mark.slow
def test_the_readme_teleop_collection_without_episodes_records_until_ctrl_c(tmp_path):
    """`robot-rl bringup teleop_collect robot=widowx backend=twin teleop=scripted out=data/wx.zarr` (the
    README's command without episodes=: record until Ctrl-C), in a fresh folder."""
    command = [str(Path(sys.executable).parent / "robot-rl"), "bringup", "teleop_collect", "robot=widowx",
               "backend=twin", "teleop=scripted", "out=data/wx.zarr"]
    store = tmp_path / "data" / "wx.zarr"
    bringup = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []  # read as it comes, so a full pipe never stalls the graph
    reader = threading.Thread(target=lambda: lines.extend(bringup.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: bringup.poll() is not None or _committed_episodes(store) >= 1, 240.0,
                 "an episode committed to the store")
        assert bringup.poll() is None, "the graph ended by itself: " + "".join(lines)[-3000:]
        committed = _committed_episodes(store)
        bringup.send_signal(signal.SIGINT)
        bringup.wait(timeout=60.0)
        reader.join(timeout=10.0)
    finally:
        if bringup.poll() is None:
            bringup.kill()
            bringup.wait()
    output = "".join(lines)
    assert bringup.returncode == 130, output[-3000:]  # the supervisor's status for Ctrl-C
    for node in ("recorder", "widowx"):
        assert f"[bringup] {node} stopped (status 0)" in output, output[-3000:]
    recorder_lines = [line for line in output.splitlines() if line.startswith("[recorder]")]
    assert not [line for line in recorder_lines if any(f in line for f in SHUTDOWN_FAILURES)], recorder_lines
    assert "Traceback" not in output, output[-3000:]
    assert validate(store) == []
    reader = TrajectoryReader(store)
    assert reader.num_episodes >= committed >= 1
    assert {reader.episode_info(i)["source"] for i in range(reader.num_episodes)} == {"scripted"}


def _committed_episodes(store: Path) -> int:
    if not (store / "zarr.json").exists():
        return 0
    try:
        return TrajectoryReader(store).num_episodes
    except (OSError, ValueError, StoreError):  # a read racing the recorder creating the store: look again
        return 0
