"""The emulated VESC (its own process, a pty, the MuJoCo car in real time) driven by the real driver,
robot_rl.drivers.rc_car.vesc.VescSerial, exactly as it drives the car's VESC over USB."""
from __future__ import annotations

import math
import time

import pytest

pytest.importorskip("serial")

from robot_rl.drivers.backend import BackendFault  # noqa: E402
from robot_rl.drivers.rc_car.vesc import VescSerial  # noqa: E402
from robot_rl.sim.rc_car import constants as car  # noqa: E402
from robot_rl.sim.vesc import protocol as p  # noqa: E402
from robot_rl.sim.vesc.car import TIMEOUT_S, servo_to_steering  # noqa: E402
from robot_rl.sim.vesc.process import EmulatedVescProcess  # noqa: E402


@pytest.fixture
def vesc():
    with EmulatedVescProcess(seed=3) as emulated:
        driver = VescSerial(emulated.port)
        driver.connect()
        yield emulated, driver
        driver.close()


def _drive(driver: VescSerial, action, seconds: float):
    """Command at 50 Hz for a while, as the driver node does; returns the last state."""
    end = time.monotonic() + seconds
    state = None
    while time.monotonic() < end:
        driver.send_action(action)
        state = driver.poll()
        time.sleep(0.02)
    return state


def _wait_for(condition, timeout: float = 5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout} s")


def test_values_and_imu_round_trip_at_rest(vesc):
    emulated, driver = vesc
    time.sleep(0.3)  # the car settles on its wheels
    state = driver.poll()
    assert state.values.input_voltage == pytest.approx(11.1)
    assert state.values.fault_code == 0 and abs(state.values.erpm) < 50
    assert state.imu.acc_z == pytest.approx(1.0, abs=0.05)  # specific force: +1 g, in the firmware's unit
    assert abs(state.imu.gyro_z) < 1.0
    q = (state.imu.q_w, state.imu.q_x, state.imu.q_y, state.imu.q_z)
    assert math.sqrt(sum(c * c for c in q)) == pytest.approx(1.0, abs=1e-4)
    yaw = math.atan2(2 * (q[0] * q[3] + q[1] * q[2]), 1 - 2 * (q[2] ** 2 + q[3] ** 2))
    assert yaw == pytest.approx(emulated.ground_truth()[2], abs=0.02)


def test_commands_move_the_twin_car(vesc):
    emulated, driver = vesc
    throttle = 0.15  # 0.45 m/s: room to drive for a second without reaching a wall
    state = _drive(driver, (0.0, throttle), 1.0)
    expected_erpm = car.SPEED_TO_ERPM_GAIN * throttle * car.MAX_SPEED
    assert emulated.commands()["target_erpm"] == pytest.approx(expected_erpm, abs=1)
    assert state.values.erpm == pytest.approx(expected_erpm, rel=0.15)
    assert car.erpm_to_speed(state.values.erpm) == pytest.approx(emulated.ground_truth()[3], abs=0.1)
    assert state.values.tachometer > 0 and state.values.duty > 0
    _drive(driver, (1.0, 0.0), 0.6)  # full left lock: the servo map clips at SERVO_MIN
    servo = emulated.commands()["servo"]
    assert servo == pytest.approx(car.action_to_vesc((1.0, 0.0))[1], abs=1e-3)
    assert emulated.steering() == pytest.approx(servo_to_steering(servo), abs=0.03)
    driver.send_brake()
    assert _wait_for(lambda: abs(driver.poll().values.erpm) < 100)


def test_the_vesc_stops_by_itself_when_commands_stop(vesc):
    emulated, driver = vesc
    _drive(driver, (0.0, 0.1), 0.3)
    assert emulated.commands()["target_erpm"] is not None
    quiet_since = time.monotonic()
    _wait_for(lambda: emulated.commands()["target_erpm"] is None, timeout=TIMEOUT_S + 2)
    assert time.monotonic() - quiet_since >= TIMEOUT_S * 0.9
    driver.send_alive()  # keeps the link alive without moving


def test_corrupt_replies_are_dropped_counted_and_retried(vesc):
    emulated, driver = vesc
    emulated.corrupt_replies(1)
    state = driver.poll()  # the retry's answer
    assert driver.corrupt_frames >= 1 and driver.missed_replies >= 1
    assert state.values.input_voltage == pytest.approx(11.1)
    emulated.corrupt_replies(10)  # every try corrupted: a fault that says so, never a decoded value
    with pytest.raises(BackendFault, match="did not answer.*corrupt frames"):
        driver.poll()


def test_corrupt_commands_are_never_acted_on(vesc):
    emulated, driver = vesc
    driver.send_rpm(500.0)
    _wait_for(lambda: emulated.commands()["target_erpm"] == 500.0)
    emulated.corrupt_commands(1)
    driver.send_rpm(9000.0)
    driver.poll()  # a round trip: the corrupted command has been read by now
    assert emulated.stats()["corrupt_in"] >= 1
    assert emulated.commands()["target_erpm"] == 500.0
    driver.send_brake()


def test_fault_code_and_low_battery_are_reported(vesc):
    emulated, driver = vesc
    emulated.set_fault(5)
    driver.send_rpm(3000.0)
    state = driver.poll()
    assert state.values.fault_code == 5 and p.fault_name(5) == "FET over temperature"
    assert emulated.commands()["target_erpm"] is None  # a faulted VESC ignores motor commands
    emulated.clear_fault()
    emulated.set_battery(7.4)
    state = driver.poll()
    assert state.values.input_voltage == pytest.approx(7.4) and state.values.fault_code == 2


def test_pulled_cable_is_named_within_100_ms_and_reconnects(vesc):
    emulated, driver = vesc
    pulled_at = emulated.unplug()
    with pytest.raises(BackendFault, match="unplugged") as raised:
        driver.poll()
    assert time.monotonic() - pulled_at < 0.1
    assert emulated.port.split("/")[-1] in str(raised.value)
    with pytest.raises(BackendFault, match="unplugged"):
        driver.send_rpm(1000.0)  # latched: nothing more is written to a lost port
    emulated.replug()
    assert driver.connect().values.input_voltage == pytest.approx(11.1)


def test_a_missing_port_is_refused_with_the_fix():
    with pytest.raises(BackendFault, match="cannot open the VESC's port /nonexistent/ttyACM0.*dialout"):
        VescSerial("/nonexistent/ttyACM0").connect()
