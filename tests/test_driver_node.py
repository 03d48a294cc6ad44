"""The driver node over real DDS on loopback, with the WidowX MuJoCo twin as its backend (no mocks): its
topics, QoS, services and diagnostics, end to end. The rules of its state machine (limits, watchdog,
e-stop, faults, the applied ee action) are tested without ROS in tests/test_command_arbiter.py.

Each test starts a DriverNode and a client node in one process, in a namespace of its own, spun by a
single-threaded executor in a background thread; the client talks to the driver only through topics and
services. The one stand-in is FlakyTwin, a twin whose read() raises BackendFault while a flag is set:
the real unplug path (a serial port that stops answering) is tested with the Dynamixel protocol twin
in the Dynamixel backend's tests.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from robot_rl.drivers.backend import BackendFault
from robot_rl.drivers.driver_node import COMMAND_QOS, LATCHED_QOS, DriverNode
from robot_rl.drivers.safety import SafetyFilter, widowx_limits
from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.control import DeltaPoseController
from robot_rl.sim.widowx.kinematics import WidowXKinematics
from ros_helpers import wait_for

RATE_HZ = 50.0
COMMAND_PERIOD = 0.2  # the Bridge rate
TOL = 0.02  # rad: the twin's position servos settle within this on unloaded joints
_namespaces = itertools.count()


class FlakyTwin(WidowXTwinBackend):
    """The twin, but read() raises BackendFault while ``unplugged`` is set (a stand-in, see the docstring)."""

    def __init__(self):
        super().__init__()
        self.unplugged = False

    def read(self):
        if self.unplugged:
            raise BackendFault("no status packet from servo 1 (test: unplugged)")
        return super().read()


class Client(Node):
    """Everything a user of the driver touches: its topics and services."""

    def __init__(self, context, namespace):
        super().__init__("driver_test_client", context=context, namespace=namespace)
        self._lock = threading.Lock()
        self.states: list[tuple[float, JointState]] = []
        self.diagnostics: list[tuple[float, DiagnosticStatus]] = []
        self.applied: dict[str, list[JointState]] = {"command_applied": [], "ee_command_applied": []}
        self.create_subscription(JointState, "joint_states", self._on_state, qos_profile_sensor_data)
        for topic, received in self.applied.items():
            self.create_subscription(JointState, topic, lambda msg, received=received: self._add(received, msg),
                                     COMMAND_QOS)
        self.create_subscription(DiagnosticArray, "diagnostics", self._on_diagnostics, COMMAND_QOS)
        self.joint_command = self.create_publisher(JointState, "joint_command", COMMAND_QOS)
        self.ee_command = self.create_publisher(Float64MultiArray, "ee_delta_command", COMMAND_QOS)
        self.estop = self.create_publisher(Bool, "estop", LATCHED_QOS)
        self.service_clients = {name: self.create_client(kind, name) for name, kind in
                         (("home", Trigger), ("enable_torque", SetBool), ("reset_estop", Trigger),
                          ("clear_fault", Trigger))}

    def _add(self, received: list, msg):
        with self._lock:
            received.append(msg)

    def applied_messages(self, topic: str) -> list[JointState]:
        with self._lock:
            return list(self.applied[topic])

    def _on_state(self, msg):
        with self._lock:
            self.states.append((time.monotonic(), msg))

    def _on_diagnostics(self, msg):
        with self._lock:
            self.diagnostics.extend((time.monotonic(), status) for status in msg.status)

    # --- helpers for the tests ------------------------------------------------------------------

    def positions(self, since: float = 0.0) -> np.ndarray:
        with self._lock:
            return np.array([m.position for t, m in self.states if t >= since])

    def latest(self, since: float = 0.0) -> np.ndarray:
        """The newest joint positions, received after ``since`` (waits for one)."""
        def newest():
            with self._lock:
                return self.states and self.states[-1][0] > since and self.states[-1][1]

        return np.array(wait_for(newest, 3.0, "a joint_states message").position)

    def statuses(self, since: float = 0.0) -> list[tuple[float, DiagnosticStatus]]:
        with self._lock:
            return [(t, s) for t, s in self.diagnostics if t >= since]

    def call(self, name: str, request=None):
        client = self.service_clients[name]
        assert client.wait_for_service(timeout_sec=5.0), f"service {name} not available"
        request = request if request is not None else client.srv_type.Request()
        future = client.call_async(request)
        wait_for(future.done, 5.0, f"the {name} response")
        return future.result()

    def send_joints(self, names, positions):
        self.joint_command.publish(JointState(name=list(names), position=[float(p) for p in positions]))

    def send_ee(self, action):
        self.ee_command.publish(Float64MultiArray(data=[float(a) for a in action]))


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def wait_for_diagnostic(client: Client, predicate, since: float, timeout: float = 3.0):
    def found():
        return next((s for _, s in client.statuses(since) if predicate(values(s), s)), None)

    return wait_for(found, timeout, "a matching diagnostic")


@pytest.fixture
def rig(context):
    """(driver, client, backend) spinning in a background thread; all torn down after the test."""
    backend = FlakyTwin()
    backend.connect()
    safety = SafetyFilter(widowx_limits(control_period=COMMAND_PERIOD), control_period=COMMAND_PERIOD)
    namespace = f"/driver_test_{os.getpid()}_{next(_namespaces)}"
    driver = DriverNode(backend, safety, np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1]),
                        ee_controller=DeltaPoseController(),
                        opening_from_gripper=lambda finger: float(wx.width_to_opening(2 * finger)),
                        rate_hz=RATE_HZ, context=context, namespace=namespace)
    executor = SingleThreadedExecutor(context=context)
    thread = threading.Thread(target=executor.spin, daemon=True)
    client = None
    try:
        client = Client(context, namespace)
        executor.add_node(driver)
        executor.add_node(client)
        thread.start()
        wait_for(lambda: client.joint_command.get_subscription_count() >= 1, 5.0, "joint_command matched")
        wait_for(lambda: client.ee_command.get_subscription_count() >= 1, 5.0, "ee_delta_command matched")
        wait_for(lambda: client.estop.get_subscription_count() >= 2, 5.0, "estop matched")
        client.latest()
        yield driver, client, backend
    finally:
        executor.shutdown()
        if thread.is_alive():
            thread.join(timeout=5.0)
        driver.shutdown_backend()
        driver.destroy_node()
        if client is not None:
            client.destroy_node()


def enable_torque(client: Client):
    response = client.call("enable_torque", SetBool.Request(data=True))
    assert response.success, response.message


def wait_settled(client: Client, goal: np.ndarray, joints, timeout: float) -> float:
    """Wait until the given joints are within TOL of goal; returns when (time.monotonic())."""
    def settled():
        q = client.latest()
        return time.monotonic() if np.all(np.abs(q[joints] - goal[joints]) < TOL) else None

    return wait_for(settled, timeout, f"joints {joints} to reach {goal[joints]}")


def assert_still(client: Client, seconds: float, reference: np.ndarray, what: str):
    """No commanded motion: the joints gravity does not load (waist, wrist_rotate) stay put; the others may
    sag by the position servos' steady-state error when the hold is re-anchored, never jump."""
    start = time.monotonic()
    time.sleep(seconds)
    moved = np.abs(client.positions(start)[:, :6] - reference[:6]).max(axis=0)
    assert moved[[0, 5]].max() < 0.01 and moved.max() < 0.04, f"{what}: the arm moved {np.round(moved, 3)} rad"


# --- tests --------------------------------------------------------------------------------------

def test_joint_states_arrive_at_the_bus_rate_with_the_joint_names(rig):
    _, client, _ = rig
    start = time.monotonic()
    time.sleep(1.0)
    with client._lock:
        states = [m for t, m in client.states if t >= start]
    assert 0.7 * RATE_HZ <= len(states) <= 1.2 * RATE_HZ, f"{len(states)} joint_states in 1 s at {RATE_HZ} Hz"
    assert all(tuple(m.name) == wx.JOINT_NAMES for m in states)
    assert all(len(m.position) == len(m.velocity) == len(m.effort) == 7 for m in states)
    stamps = np.array([m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for m in states])
    periods = np.diff(stamps)
    assert np.all(periods > 0), "stamps must increase"
    print(f"\njoint_states period: mean {1e3 * periods.mean():.2f} ms, std {1e3 * periods.std():.2f} ms, "
          f"max {1e3 * periods.max():.2f} ms over {len(periods)} intervals")


def test_joint_command_moves_the_arm_rate_limited(rig):
    _, client, _ = rig
    enable_torque(client)
    start = client.latest()
    goal = start.copy()
    goal[0] += 0.6   # waist
    goal[5] += 0.8   # wrist_rotate
    sent = time.monotonic()
    client.send_joints(("waist", "wrist_rotate"), goal[[0, 5]])
    arrived = wait_settled(client, goal, [0, 5], timeout=4.0)
    # pi/2 rad/s at most: 0.8 rad takes about 0.5 s (the first command may step 0.31 rad at once)
    assert arrived - sent > 0.3, f"arrived after {arrived - sent:.2f} s: not rate limited"
    wrist = client.positions(sent)[:, 5]
    between = (wrist > start[5] + 0.2) & (wrist < goal[5] - 0.2)
    assert between.any(), "no joint_states sample between start and goal"
    assert np.abs(client.latest()[[1, 2, 3, 4]] - start[[1, 2, 3, 4]]).max() < 0.05, "unnamed joints moved"


def test_ee_delta_command_moves_the_end_effector_forward(rig):
    _, client, _ = rig
    enable_torque(client)
    kinematics = WidowXKinematics()
    time.sleep(0.3)
    x_start = kinematics.forward(client.latest()[:6])[0][0]
    for _ in range(3):
        client.send_ee([1.0, 0, 0, 0, 0, 0, 1.0])
        time.sleep(COMMAND_PERIOD)
    time.sleep(1.0)
    pos_end = kinematics.forward(client.latest()[:6])[0]
    assert pos_end[0] > x_start + 0.08, f"end effector x went {x_start:.3f} -> {pos_end[0]:.3f} m"
    assert pos_end[0] <= wx.WORKSPACE_HIGH[0] + 0.01


def test_commands_reach_the_arbiter_and_its_status_the_diagnostics_topic(rig):
    """The wiring, not the rules (those are tests/test_command_arbiter.py): a dropped, a malformed and a NaN
    command over the topics are counted, and the status arrives with its level, names and bus rate."""
    _, client, _ = rig
    since = time.monotonic()
    client.send_joints(("waist",), [0.3])  # torque is off: dropped
    status = wait_for_diagnostic(client, lambda v, _: v["dropped_torque_off"] == "1", since)
    assert status.level == DiagnosticStatus.OK and status.message == "torque off"
    assert status.name == "driver: driver" and status.hardware_id == "FlakyTwin"
    enable_torque(client)
    client.send_ee([0.0] * 6)
    client.send_joints(("waist",), [float("nan")])
    status = wait_for_diagnostic(client, lambda v, _: v["dropped_malformed"] == "1" and v["nan_rejected"] == "1",
                                 time.monotonic())
    found = values(status)
    assert status.message == "running" and found["torque_enabled"] == "True"
    assert found["bus_rate_target_hz"] == f"{RATE_HZ:.1f}"
    assert 0.7 * RATE_HZ < float(found["bus_rate_hz"]) < 1.2 * RATE_HZ, found["bus_rate_hz"]


def test_estop_latches_until_reset(rig):
    _, client, _ = rig
    enable_torque(client)
    held = client.latest()
    since = time.monotonic()
    client.estop.publish(Bool(data=True))
    wait_for_diagnostic(client, lambda v, s: v["estop_latched"] == "True" and s.level == DiagnosticStatus.WARN,
                        since)
    client.send_joints(("waist",), [held[0] + 0.5])
    client.estop.publish(Bool(data=False))  # does not reset
    assert_still(client, 0.6, held, "while the e-stop is latched")
    assert not client.call("home").success
    assert client.call("reset_estop").success
    goal = held.copy()
    goal[0] += 0.5
    client.send_joints(("waist",), [goal[0]])
    wait_settled(client, goal, [0], timeout=4.0)


def test_backend_fault_holds_reports_and_recovers_without_a_jump(rig):
    driver, client, backend = rig
    enable_torque(client)
    goal = client.latest().copy()
    goal[0] += 1.2
    client.send_joints(("waist",), [goal[0]])
    time.sleep(0.3)  # mid-motion: the goal is still ahead
    unplugged = time.monotonic()
    backend.unplugged = True
    status = wait_for_diagnostic(client, lambda _, s: s.level == DiagnosticStatus.ERROR, unplugged, 1.0)
    detected = next(t for t, s in client.statuses(unplugged) if s.level == DiagnosticStatus.ERROR)
    assert detected - unplugged < 0.1, f"fault reported after {1e3 * (detected - unplugged):.0f} ms"
    assert "unplugged" in status.message and values(status)["fault"] == "True"
    wait_for(lambda: len([s for _, s in client.statuses(detected + 0.01)
                          if s.level == DiagnosticStatus.ERROR]) >= 1, 2.0, "the fault repeated at 1 Hz")
    assert not client.call("enable_torque", SetBool.Request(data=True)).success
    assert not client.call("clear_fault").success, "clear_fault succeeded while the bus still fails"

    backend.unplugged = False
    assert client.call("clear_fault").success
    stopped = client.latest(since=time.monotonic())
    assert stopped[0] < goal[0] - 0.2, "the fault came too late to test the hold"
    enable_torque(client)
    assert client.call("reset_estop").success
    assert_still(client, 0.8, stopped, "after clear_fault, enable_torque and reset_estop")
    assert not driver.safety.estopped and driver.fault is None


def test_applied_commands_report_what_was_written_with_one_stamp(rig):
    _, client, backend = rig
    enable_torque(client)
    time.sleep(0.3)

    def send_and_receive(action):
        seen = len(client.applied_messages("ee_command_applied"))
        client.send_ee(action)
        wait_for(lambda: len(client.applied_messages("ee_command_applied")) > seen, 2.0, "ee_command_applied")
        wait_for(lambda: len(client.applied_messages("command_applied")) > seen, 2.0, "command_applied")
        ee, joints = client.applied_messages("ee_command_applied")[seen], client.applied_messages("command_applied")[seen]
        assert ee.header.stamp == joints.header.stamp, "one write, one stamp"
        time.sleep(COMMAND_PERIOD + 0.05)
        return np.array(ee.position), np.array(joints.position), ee

    small = [0.2, 0.0, -0.1, 0.0, 0.1, 0.0, 1.0]
    applied, target, msg = send_and_receive(small)
    assert tuple(msg.name) == ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
    np.testing.assert_allclose(applied, small, atol=1e-6, err_msg="an unfiltered command is applied as sent")
    with backend.lock:
        written = backend.env.data.ctrl[backend._ctrl].copy()
    np.testing.assert_allclose(target, written, atol=1e-12, err_msg="command_applied is the target written")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda sig: sig.name)
def test_the_driver_process_exits_cleanly_on_ctrl_c_and_sigterm(spinner, tmp_path, sig):
    """The real process (issue 16: a diagnostics publish after the context went away, exit 1): once it
    publishes joint states it is spinning; the signal ends it with status 0, torque off, no traceback."""
    namespace = f"/driver_process_{os.getpid()}_{sig.name}"
    process = subprocess.Popen([sys.executable, "-m", "robot_rl.drivers.widowx.node", "--backend", "twin",
                                "--task", "reach", "--enable-torque", "--ros-args", "-r", f"__ns:={namespace}"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listener = spinner.add(Node("driver_process_listener", context=spinner.executor.context,
                                    namespace=namespace))
        up = threading.Event()
        listener.create_subscription(JointState, "joint_states", lambda _: up.set(), qos_profile_sensor_data)
        spinner.start()
        wait_for(lambda: up.is_set() or process.poll() is not None, 60.0, "the driver's first joint_states")
        assert process.poll() is None, f"the driver exited before it was up: {process.communicate()[1]}"
        process.send_signal(sig)
        out, err = process.communicate(timeout=30.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, f"exit status {process.returncode} after {sig.name}:\n{err}"
    for problem in ("Traceback", "context is invalid", "Failed to publish"):
        assert problem not in out + err, f"{problem!r} after {sig.name}:\n{err}"
    assert "torque on" in err
