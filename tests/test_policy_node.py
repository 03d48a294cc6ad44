"""The policy node over real DDS on loopback: a checkpoint the learner wrote in this test drives the WidowX
twin through a real DriverNode; announced and polled checkpoints swap in; bad ones are refused.

The checkpoints are test_policy_runner's: a tiny `robot-rl train` run (untrained: these tests check
plumbing, not skill) and a copy with its weights perturbed. The ROS-free logic is tested there.
"""
from __future__ import annotations

import itertools
import os
import shutil
import threading
import time

import numpy as np
import pytest
import test_policy_runner
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, String

from robot_rl.drivers.driver_node import DriverNode
from robot_rl.drivers.policy_node import (
    ANNOUNCE_QOS,
    COMMAND_QOS,
    ObservationMismatch,
    PolicyNode,
    load_checkpoint_policy,
    twin_observation,
)
from robot_rl.drivers.safety import SafetyFilter, widowx_limits
from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend
from robot_rl.learner.checkpoint import resolve_checkpoint
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.control import DeltaPoseController
from ros_helpers import wait_for

checkpoints = test_policy_runner.checkpoints  # fixtures: run A and a perturbed checkpoint B; a twin observation
observation = test_policy_runner.observation
expected_action = test_policy_runner.expected_action
RATE_HZ = 5.0
_namespaces = itertools.count()


# --- ROS plumbing ---------------------------------------------------------------------------------

class Listener(Node):
    """What the driver sees (ee_delta_command) and the policy's diagnostics; announces checkpoints."""

    def __init__(self, context, namespace):
        super().__init__("policy_test_listener", context=context, namespace=namespace)
        self._lock = threading.Lock()
        self.commands: list[tuple[float, np.ndarray]] = []
        self.statuses: list[tuple[float, DiagnosticStatus]] = []
        self.create_subscription(Float64MultiArray, "ee_delta_command", self._on_command, COMMAND_QOS)
        self.create_subscription(DiagnosticArray, "diagnostics", self._on_diagnostics, COMMAND_QOS)
        self.announce_pub = self.create_publisher(String, "checkpoint_announce", ANNOUNCE_QOS)

    def _on_command(self, msg):
        with self._lock:
            self.commands.append((time.monotonic(), np.array(msg.data)))

    def _on_diagnostics(self, msg):
        with self._lock:
            self.statuses += [(time.monotonic(), s) for s in msg.status if s.name.endswith(": policy")]

    def commands_since(self, since: float) -> list[np.ndarray]:
        with self._lock:
            return [c for t, c in self.commands if t >= since]

    def command_times(self) -> list[float]:
        with self._lock:
            return [t for t, _ in self.commands]

    def status_where(self, predicate, since: float = 0.0) -> DiagnosticStatus | None:
        with self._lock:
            return next((s for t, s in reversed(self.statuses) if t >= since and predicate(s)), None)

    def announce(self, path) -> float:
        self.announce_pub.publish(String(data=str(path)))
        return time.monotonic()


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def namespace() -> str:
    return f"/policy_test_{os.getpid()}_{next(_namespaces)}"


class RecordingSource:
    """An observation source that keeps every observation it hands out."""

    def __init__(self, source):
        self.source, self._lock, self.observations = source, threading.Lock(), []

    def __call__(self):
        obs = self.source()
        with self._lock:
            self.observations.append({k: v.copy() for k, v in obs.items()})
        return obs

    def recorded(self) -> list[dict]:
        with self._lock:
            return list(self.observations)



# --- tests ----------------------------------------------------------------------------------------

def test_policy_drives_the_twin_through_the_driver_with_the_agents_actions(context, spinner, checkpoints):
    run_a, _ = checkpoints
    backend = WidowXTwinBackend(task="reach", seed=3)
    backend.connect()
    try:
        ns = namespace()
        safety = SafetyFilter(widowx_limits(control_period=1 / RATE_HZ), control_period=1 / RATE_HZ)
        driver = spinner.add(DriverNode(
            backend, safety, np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1]), ee_controller=DeltaPoseController(),
            opening_from_gripper=lambda finger: float(wx.width_to_opening(2 * finger)),
            context=context, namespace=ns))
        assert driver.enable_torque(True)[0]
        source = RecordingSource(twin_observation(backend))
        listener = spinner.add(Listener(context, ns))
        node = spinner.add(PolicyNode(run_a, source, rate_hz=RATE_HZ, context=context, namespace=ns))
        ee_start = backend.env.ee_pos
        spinner.start()
        wait_for(lambda: len(listener.commands_since(0.0)) >= 12, 6.0, "12 ee_delta_commands")
        status = wait_for(lambda: listener.status_where(lambda s: int(values(s)["inference_samples"]) > 5),
                          3.0, "diagnostics with inference latencies")
    finally:
        spinner.stop()
        backend.close()

    times = listener.command_times()
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 4.0 < rate < 6.0, f"commands at {rate:.2f} Hz, expected about {RATE_HZ}"
    moved = np.linalg.norm(backend.env.ee_pos - ee_start)
    assert moved > 0.005, f"the end effector moved {moved * 1e3:.1f} mm"

    # Each received command is agent.act on the observation the node read in that tick (the first
    # observation read is the start-up check of the source's keys).
    reference = load_checkpoint_policy(run_a)
    observations, commands = source.recorded(), listener.commands_since(0.0)
    expected = [expected_action(reference, obs) for obs in observations]
    first = next(i for i, e in enumerate(expected) if np.allclose(e, commands[0], atol=1e-5))
    for k, command in enumerate(commands):
        np.testing.assert_allclose(command, expected[first + k], atol=1e-5)
    assert np.abs(np.array(commands)).max() <= 1.0

    info = values(status)
    assert status.level == DiagnosticStatus.OK and info["checkpoint"] == str(reference.folder)
    print(f"\ninference latency p50 {info['inference_p50_ms']} ms, p99 {info['inference_p99_ms']} ms; "
          f"commands at {rate:.2f} Hz; end effector moved {moved * 1e3:.1f} mm")
    assert node.actions_published >= len(commands)


def test_announced_checkpoints_swap_in_and_bad_ones_are_refused(context, spinner, checkpoints, observation):
    run_a, checkpoint_b = checkpoints
    obs = observation
    policy_a, policy_b = load_checkpoint_policy(run_a), load_checkpoint_policy(checkpoint_b)
    action_a, action_b = expected_action(policy_a, obs), expected_action(policy_b, obs)
    assert not np.allclose(action_a, action_b, atol=1e-3), "the perturbed weights act the same"

    ns = namespace()
    listener = spinner.add(Listener(context, ns))
    node = spinner.add(PolicyNode(run_a, lambda: obs, rate_hz=10.0, context=context, namespace=ns))
    spinner.start()
    wait_for(lambda: len(listener.commands_since(0.0)) >= 3, 3.0, "the first commands")
    np.testing.assert_allclose(listener.commands_since(0.0)[-1], action_a, atol=1e-5)

    since = listener.announce("/nonexistent/checkpoint")
    refused = wait_for(lambda: listener.status_where(lambda s: s.level == DiagnosticStatus.ERROR, since),
                       3.0, "an ERROR for the bad checkpoint")
    assert "/nonexistent/checkpoint" in refused.message and values(refused)["checkpoint"] == str(policy_a.folder)
    after_refusal = time.monotonic()
    wait_for(lambda: len(listener.commands_since(after_refusal)) >= 3, 3.0, "commands after the refusal")
    for command in listener.commands_since(after_refusal):
        np.testing.assert_allclose(command, action_a, atol=1e-5)  # the old policy keeps running

    since = listener.announce(checkpoint_b)
    switched = wait_for(lambda: listener.status_where(
        lambda s: values(s)["checkpoint"] == str(checkpoint_b), since), 3.0, "diagnostics naming checkpoint B")
    assert switched.level == DiagnosticStatus.OK and values(switched)["reloads"] == "1"
    after_switch = time.monotonic()
    wait_for(lambda: len(listener.commands_since(after_switch)) >= 3, 3.0, "commands after the switch")
    for command in listener.commands_since(after_switch):
        np.testing.assert_allclose(command, action_b, atol=1e-5)

    # Transient local: a node that starts after the announcement still gets it.
    late = spinner.add(PolicyNode(run_a, lambda: obs, rate_hz=10.0, node_name="late_policy",
                                  context=context, namespace=ns))
    wait_for(lambda: late.policy.folder == checkpoint_b, 5.0, "the late node to load the announced checkpoint")
    assert node.policy.folder == checkpoint_b


def test_polling_picks_up_a_newer_checkpoint(context, spinner, checkpoints, observation, tmp_path):
    run_a, checkpoint_b = checkpoints
    folder = tmp_path / "checkpoints"
    shutil.copytree(resolve_checkpoint(run_a), folder / "step_1")
    (folder / "latest").write_text("step_1")
    obs = observation
    node = spinner.add(PolicyNode(tmp_path, lambda: obs, rate_hz=10.0, poll_checkpoints_s=0.2,
                                  context=context, namespace=namespace()))
    spinner.start()
    assert node.policy.folder == folder / "step_1"
    shutil.copytree(checkpoint_b, folder / "step_2")
    (folder / "latest").write_text("step_2")
    wait_for(lambda: node.policy.folder == folder / "step_2", 3.0, "the polled checkpoint to swap in")
    assert node.runner.reloads == 1


def test_a_checkpoint_reading_a_key_the_source_lacks_is_refused(context, checkpoints, observation):
    run_a, _ = checkpoints
    state_only = {"state": observation["state"]}  # what a hardware source could give
    with pytest.raises(ObservationMismatch, match="'task_state'.*privileged"):
        PolicyNode(run_a, lambda: state_only, context=context, namespace=namespace())
    wrong_shape = {**observation, "state": np.zeros(9, np.float32)}
    with pytest.raises(ObservationMismatch, match=r"'state' expected shape \(14,\)"):
        PolicyNode(run_a, lambda: wrong_shape, context=context, namespace=namespace())
