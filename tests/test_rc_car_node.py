"""The RC car's robot process (robot_rl.drivers.rc_car.node) as a real process, over DDS on loopback: on the
VESC protocol twin (its own process, a pty) and on the MuJoCo twin. Drive commands move the car; odometry
follows; e-stop, a pulled cable, reconnect without a lurch, Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("serial")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Imu  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from robot_rl.drivers.driver_node import COMMAND_QOS  # noqa: E402
from robot_rl.sim.rc_car import constants as car  # noqa: E402
from robot_rl.sim.vesc.process import EmulatedVescProcess  # noqa: E402
from ros_helpers import wait_for  # noqa: E402

ERROR = 2


class CarOperator:
    """The test's side: publishes drive commands at 20 Hz from a thread, listens to odom, imu, diagnostics."""

    def __init__(self, spinner, namespace: str):
        self.node = spinner.add(Node("car_operator", context=spinner.executor.context, namespace=namespace))
        self.drive_pub = self.node.create_publisher(Float64MultiArray, "drive_command", COMMAND_QOS)
        self.estop_pub = self.node.create_publisher(Bool, "estop", COMMAND_QOS)
        self.odom: Odometry | None = None
        self.imu: Imu | None = None
        self.diagnostics: list[tuple[float, object]] = []
        self.node.create_subscription(Odometry, "odom", lambda m: setattr(self, "odom", m), 10)
        self.node.create_subscription(Imu, "imu", lambda m: setattr(self, "imu", m), 10)
        self.node.create_subscription(DiagnosticArray, "diagnostics",
                                      lambda m: self.diagnostics.append((time.monotonic(), m.status[0])), COMMAND_QOS)
        self.command = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish, daemon=True)
        self._thread.start()

    def _publish(self):
        while not self._stop.wait(0.05):
            if self.command is not None:
                self.drive_pub.publish(Float64MultiArray(data=list(self.command)))

    def stop(self):
        self._stop.set()
        self._thread.join()

    def call(self, name: str) -> Trigger.Response:
        client = self.node.create_client(Trigger, name)
        assert client.wait_for_service(timeout_sec=10.0), f"no {name} service"
        future = client.call_async(Trigger.Request())
        wait_for(future.done, 10.0, f"the {name} response")
        return future.result()

    def last_status(self):
        return self.diagnostics[-1][1] if self.diagnostics else None


def _start(backend_args: list[str], namespace: str, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "robot_rl.drivers.rc_car.node", *backend_args, "--enable-torque",
                             "--ros-args", "-r", f"__ns:={namespace}"],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen) -> tuple[str, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=30.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _up(operator: CarOperator, process: subprocess.Popen):
    wait_for(lambda: operator.odom is not None or process.poll() is not None, 60.0, "the car driver's first odom")
    assert process.poll() is None, f"the car driver exited before it was up: {process.communicate()[1]}"


def _target_erpm(vesc) -> float | None:
    return vesc.commands()["target_erpm"]


def test_the_car_drives_brakes_on_estop_and_a_pulled_cable_and_rearms_through_zero(spinner, tmp_path):
    namespace = f"/rc_car_vesc_{os.getpid()}"
    with EmulatedVescProcess(seed=5, timeout_s=0.1) as vesc:  # the VESC's timeout set to 100 ms, as the README asks
        process = _start(["--backend", "vesc", "--port", vesc.port], namespace, tmp_path)
        operator = CarOperator(spinner, namespace)
        spinner.start()
        try:
            _up(operator, process)
            wait_for(lambda: operator.imu is not None and abs(operator.imu.linear_acceleration.z - 9.81) < 0.3, 5.0,
                     "1 g on the imu topic once the car settled")

            operator.command = (0.0, 0.5)  # 0.5 m/s straight on
            wait_for(lambda: abs(operator.odom.twist.twist.linear.x - 0.5) < 0.08, 10.0, "odom at 0.5 m/s")
            assert _target_erpm(vesc) == pytest.approx(0.5 * car.SPEED_TO_ERPM_GAIN, rel=0.01)
            start_x = operator.odom.pose.pose.position.x
            wait_for(lambda: operator.odom.pose.pose.position.x > start_x + 0.1, 5.0, "odometry moving forward")

            operator.estop_pub.publish(Bool(data=True))
            wait_for(lambda: _target_erpm(vesc) is None, 2.0, "the brake after the e-stop")
            time.sleep(0.3)  # commands keep coming: the latched e-stop refuses them
            assert _target_erpm(vesc) is None
            assert operator.call("reset_estop").success
            time.sleep(0.3)  # the old throttle is still commanded: no lurch
            assert _target_erpm(vesc) is None
            operator.command = (0.0, 0.0)
            wait_for(lambda: _target_erpm(vesc) == 0.0, 2.0, "re-armed by a zero command")
            operator.command = (0.0, 0.3)
            wait_for(lambda: _target_erpm(vesc) == pytest.approx(0.3 * car.SPEED_TO_ERPM_GAIN, rel=0.01), 5.0,
                     "driving again after the reset")

            pulled_at = vesc.unplug()
            error = wait_for(lambda: next((t for t, s in operator.diagnostics if s.level == bytes([ERROR])), None),
                             5.0, "an ERROR diagnostic after the cable was pulled")
            assert error - pulled_at < 0.1, f"the ERROR diagnostic came {error - pulled_at:.3f} s after the hang-up"
            assert "unplugged" in operator.last_status().message
            wait_for(lambda: vesc.commands()["motor"] == "timeout", 1.0, "the VESC's own timeout braking the car")

            vesc.replug()
            assert operator.call("clear_fault").success
            time.sleep(0.3)  # the operator still asks for 0.3 m/s: refused until it comes back through zero
            assert _target_erpm(vesc) is None
            operator.command = (0.0, 0.0)
            wait_for(lambda: _target_erpm(vesc) == 0.0, 2.0, "re-armed by a zero command after the reconnect")
            operator.command = (0.2, 0.3)
            wait_for(lambda: _target_erpm(vesc) == pytest.approx(0.3 * car.SPEED_TO_ERPM_GAIN, rel=0.01), 5.0,
                     "driving after the reconnect")
            assert vesc.commands()["servo"] == pytest.approx(car.STEERING_TO_SERVO_GAIN * 0.2 + car.STEERING_TO_SERVO_OFFSET,
                                                             abs=2e-3)
        finally:
            operator.stop()
            out, err = _stop(process)
        assert process.returncode == 0, err
        assert "Traceback" not in err


def test_ctrl_c_brakes_the_motor_before_the_process_ends(spinner, tmp_path):
    namespace = f"/rc_car_ctrl_c_{os.getpid()}"
    with EmulatedVescProcess(seed=6, timeout_s=1.0) as vesc:  # the firmware default: the driver must brake itself
        process = _start(["--backend", "vesc", "--port", vesc.port], namespace, tmp_path)
        operator = CarOperator(spinner, namespace)
        spinner.start()
        try:
            _up(operator, process)
            operator.command = (0.0, 0.4)
            wait_for(lambda: (_target_erpm(vesc) or 0) > 1000, 10.0, "the car driving")
            operator.stop()
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30.0)
            commands = vesc.commands()
            assert commands["last_motor_command"] == "brake", f"the motor was not braked at Ctrl-C: {commands}"
        finally:
            _stop(process)
        assert process.returncode == 0


def test_the_twin_backend_drives_and_reports(spinner, tmp_path):
    namespace = f"/rc_car_twin_{os.getpid()}"
    process = _start(["--backend", "twin", "--seed", "2"], namespace, tmp_path)
    operator = CarOperator(spinner, namespace)
    spinner.start()
    try:
        _up(operator, process)
        operator.command = (0.1, 0.4)
        wait_for(lambda: abs(operator.odom.twist.twist.linear.x - 0.4) < 0.08, 10.0, "odom at 0.4 m/s on the twin")
        wait_for(lambda: operator.odom.twist.twist.angular.z > 0.05, 5.0, "a left turn in the odometry")
        wait_for(lambda: operator.last_status() is not None and operator.last_status().message == "running", 5.0,
                 "an OK diagnostic")
        keys = {kv.key for kv in operator.last_status().values}
        assert {"battery_voltage", "temp_fet_c", "temp_motor_c"} <= keys
    finally:
        operator.stop()
        out, err = _stop(process)
    assert process.returncode == 0, err


def test_a_low_battery_warns_and_a_vesc_fault_code_brakes_with_an_error(spinner, tmp_path):
    namespace = f"/rc_car_fault_{os.getpid()}"
    with EmulatedVescProcess(seed=7) as vesc:
        process = _start(["--backend", "vesc", "--port", vesc.port], namespace, tmp_path)
        operator = CarOperator(spinner, namespace)
        spinner.start()
        try:
            _up(operator, process)
            vesc.set_battery(10.2)  # 3.4 V a cell on a 3S pack: still above the VESC's cut-off
            wait_for(lambda: "low battery" in (operator.last_status().message if operator.last_status() else ""), 5.0,
                     "the low-battery warning")
            assert operator.last_status().level == bytes([1])
            operator.command = (0.0, 0.3)
            wait_for(lambda: _target_erpm(vesc) is not None, 5.0, "the car driving")
            vesc.set_fault(5)
            wait_for(lambda: operator.last_status().level == bytes([ERROR]), 2.0, "an ERROR diagnostic for the fault")
            assert "FET over temperature" in operator.last_status().message
            assert _target_erpm(vesc) is None
            assert not operator.call("clear_fault").success, "the VESC still reports its fault"
            vesc.clear_fault()
            vesc.set_battery(11.1)
            # the VESC takes commands again: the driver, still in its fault, sends brakes, not the 0.3 m/s asked
            wait_for(lambda: vesc.commands()["motor"] == "brake", 1.0, "the driver braking while in its fault")
            assert operator.call("clear_fault").success
            time.sleep(0.3)
            assert vesc.commands()["motor"] == "brake", "no lurch: the throttle must come back through zero"
            operator.command = (0.0, 0.0)
            wait_for(lambda: _target_erpm(vesc) == 0.0, 2.0, "re-armed by a zero command")
        finally:
            operator.stop()
            _stop(process)
        assert process.returncode == 0


def test_the_gamepad_drives_the_car_only_while_its_deadman_is_held(spinner, tmp_path):
    """The car's teleop node (a gamepad, its levels set by the test) -> the robot process -> the VESC twin."""
    from robot_rl.drivers.rc_car.teleop import CarGamepad, make_teleop_node

    namespace = f"/rc_car_gamepad_{os.getpid()}"
    with EmulatedVescProcess(seed=8) as vesc:
        process = _start(["--backend", "vesc", "--port", vesc.port], namespace, tmp_path)
        operator = CarOperator(spinner, namespace)  # listens to odom; sends no drive_command (command stays None)
        pad = {"axes": {0: 0.0, 2: -1.0, 5: -1.0}, "buttons": {}}
        joystick = type("Pad", (), {"get_axis": lambda self, a: pad["axes"].get(a, 0.0),
                                    "get_button": lambda self, b: pad["buttons"].get(b, 0)})()
        device = CarGamepad(joystick=joystick, max_throttle=0.2)
        device.connect()
        spinner.add(make_teleop_node(device, rate_hz=20.0, node_name="car_gamepad", context=spinner.executor.context,
                                     namespace=namespace))
        spinner.start()
        try:
            _up(operator, process)
            wait_for(lambda: vesc.commands()["last_motor_command"] == "rpm", 5.0, "the teleop's zero throttle")
            pad["axes"][5] = 1.0  # full throttle, deadman released
            time.sleep(0.5)
            assert (_target_erpm(vesc) or 0.0) == 0.0, "throttle without the deadman reached the VESC"
            pad["buttons"][4] = 1  # LB: the deadman
            expected = 0.2 * car.MAX_SPEED * car.SPEED_TO_ERPM_GAIN
            wait_for(lambda: _target_erpm(vesc) == pytest.approx(expected, abs=1), 5.0, "throttle with the deadman")
            pad["buttons"][4] = 0
            wait_for(lambda: _target_erpm(vesc) == 0.0, 2.0, "released deadman: zero throttle")
        finally:
            operator.stop()
            _stop(process)
        assert process.returncode == 0
