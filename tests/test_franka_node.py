"""The Franka robot process (python -m robot_rl.drivers.franka.node) as a real process, over DDS on loopback:
on the twin, and on backend=franky through libfranka against franky-sim; the WidowX driver's surface, the
Franka's faults (franky-sim killed mid-motion: an ERROR diagnostic and a latched stop; clear_fault
reconnects), and Ctrl-C ending it with status 0."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from robot_rl.drivers.driver_node import COMMAND_QOS, LATCHED_QOS
from robot_rl.sim.franka import panda, server
from robot_rl.sim.franka.kinematics import PandaKinematics
from ros_helpers import wait_for

DOWN = [0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]
KINEMATICS = PandaKinematics()


class FrankaProcess:
    """The robot process and a listener node in the test: joint_states, ee_command_applied, diagnostics."""

    def __init__(self, spinner, tmp_path, *args: str):
        self.namespace = f"/franka_{os.getpid()}_{time.monotonic_ns()}"
        self.process = subprocess.Popen([sys.executable, "-m", "robot_rl.drivers.franka.node", *args, "--enable-torque",
                                         "--ros-args", "-r", f"__ns:={self.namespace}"],
                                        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        node = self.node = spinner.add(Node("franka_listener", context=spinner.executor.context, namespace=self.namespace))
        self.joints, self.applied, self.levels = [], [], []
        self.lock = threading.Lock()
        node.create_subscription(JointState, "joint_states", self._on_joints, qos_profile_sensor_data)
        node.create_subscription(JointState, "ee_command_applied", lambda m: self.applied.append(list(m.position)),
                                 COMMAND_QOS)
        node.create_subscription(DiagnosticArray, "diagnostics",
                                 lambda m: self.levels.extend(int.from_bytes(s.level, "little") if isinstance(s.level, bytes)
                                                              else int(s.level) for s in m.status), COMMAND_QOS)
        self.command = node.create_publisher(Float64MultiArray, "ee_delta_command", COMMAND_QOS)
        self.estop = node.create_publisher(Bool, "estop", LATCHED_QOS)
        self.clients = {name: node.create_client(Trigger, name) for name in ("clear_fault", "reset_estop", "home")}
        spinner.start()
        wait_for(lambda: self.joints or self.process.poll() is not None, 90.0, "the driver's first joint_states")
        assert self.process.poll() is None, f"the driver exited before it was up: {self.process.communicate()[1]}"

    def _on_joints(self, msg):
        with self.lock:
            self.joints.append(dict(zip(msg.name, msg.position)))

    def latest(self) -> dict:
        with self.lock:
            return self.joints[-1]

    def tcp_z(self) -> float:
        joints = self.latest()
        return float(KINEMATICS.forward([joints[name] for name in panda.JOINT_NAMES])[0][2])

    def send(self, action, times: int = 1) -> None:
        for _ in range(times):
            self.command.publish(Float64MultiArray(data=[float(a) for a in action]))
            time.sleep(1.0 / panda.CONTROL_RATE_HZ)

    def call(self, name: str) -> Trigger.Response:
        client = self.clients[name]
        assert client.wait_for_service(timeout_sec=30.0), f"no {name} service"
        future = client.call_async(Trigger.Request())
        wait_for(future.done, 30.0, f"the {name} reply")
        return future.result()

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=30.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err


@pytest.mark.parametrize("backend", ["twin", "franky"])
def test_the_franka_process_moves_on_commands_holds_on_estop_and_exits_zero(spinner, tmp_path, backend, request):
    args = ["--backend", "twin", "--task", "lift"]
    if backend == "franky":
        args = ["--backend", "franky", "--port", request.getfixturevalue("franky_sim_host")]
    robot = FrankaProcess(spinner, tmp_path, *args)
    try:
        assert set(robot.latest()) == {*panda.JOINT_NAMES, "finger"}
        start = robot.tcp_z()
        robot.send(DOWN, times=5)
        wait_for(lambda: len(robot.applied) >= 5, 30.0, "ee_command_applied for each command")
        assert all(len(a) == 7 for a in robot.applied)
        wait_for(lambda: robot.tcp_z() < start - 0.05, 30.0, "the TCP moving down")
        robot.estop.publish(Bool(data=True))
        wait_for(lambda: 1 in robot.levels, 30.0, "a WARN diagnostic with the e-stop latched")
        time.sleep(1.0)  # the hold settles
        held = robot.tcp_z()
        robot.send(DOWN, times=5)
        time.sleep(0.5)
        assert robot.tcp_z() == pytest.approx(held, abs=3e-3), "the e-stop holds the arm"
        assert robot.call("reset_estop").success
    finally:
        status, err = robot.stop()
    assert status == 0, err
    assert "Traceback" not in err, err


def test_a_killed_franky_sim_is_an_error_and_clear_fault_reconnects(spinner, tmp_path):
    host = server.free_loopback_host(start=150)
    sim = server.spawn(host)
    robot = FrankaProcess(spinner, tmp_path, "--backend", "franky", "--port", host)
    try:
        robot.send(DOWN, times=3)
        sim.kill()
        robot.send(DOWN, times=3)  # commands keep coming: the driver latches a stop
        wait_for(lambda: 2 in robot.levels, 30.0, "an ERROR diagnostic")
        sim = server.spawn(host)
        reply = robot.call("clear_fault")
        assert reply.success, reply.message
        assert robot.call("reset_estop").success
        robot.levels.clear()
        wait_for(lambda: robot.levels, 30.0, "a diagnostic after the recovery")
        assert 2 not in robot.levels
    finally:
        status, err = robot.stop()
        server.stop(sim)
    assert status == 0, err
