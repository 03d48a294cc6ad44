"""WidowXDynamixelBackend through the real dynamixel-sdk against the emulated servo chain (a real pty)."""
from __future__ import annotations

import copy
import time

import numpy as np
import pytest

pytest.importorskip("dynamixel_sdk")

from robot_rl.drivers.backend import BackendFault  # noqa: E402
from robot_rl.drivers.widowx.dynamixel_backend import (  # noqa: E402
    WidowXDynamixelBackend,
    load_widowx_config,
)
from robot_rl.sim.dynamixel.process import EmulatedWidowXProcess  # noqa: E402
from robot_rl.sim.widowx import robot as wx  # noqa: E402

ARM_TOLERANCE = 0.03       # rad: the twin's position actuators sag a little under gravity
GRIPPER_TOLERANCE = 0.001  # m
TICK = 2 * np.pi / 4096


@pytest.fixture
def arm(tmp_path):
    with EmulatedWidowXProcess() as emulated:  # the servos answer from a process of their own, as real ones do
        yield emulated


@pytest.fixture
def backend(arm):
    robot = WidowXDynamixelBackend(arm.port, config=load_widowx_config())
    robot.connect()
    yield robot
    robot.close()


def _wait_until(backend, targets, timeout_s=3.0):
    deadline = time.monotonic() + timeout_s
    while True:
        position = backend.read().position
        error = np.abs(position - targets)
        if (error[:6] < ARM_TOLERANCE).all() and error[6] < GRIPPER_TOLERANCE or time.monotonic() > deadline:
            return position
        time.sleep(0.05)


def test_config_matches_the_robot_facts():
    config = load_widowx_config()
    backend = WidowXDynamixelBackend("/dev/null", config=config)
    assert backend.joint_names == wx.JOINT_NAMES
    assert backend.limits[:6] == pytest.approx(wx.ARM_LIMITS, abs=1e-5)
    assert tuple(backend.limits[6]) == pytest.approx(wx.FINGER_LIMITS)
    assert backend.servo_ids == tuple(range(1, 10))
    assert (config["joints"]["shoulder"]["shadow_id"], config["joints"]["elbow"]["shadow_id"]) == (3, 5)
    assert config["control_rate_hz"] == 5 and config["baudrate"] == 1_000_000


def test_connect_identifies_the_servos_and_configures_the_shadows(arm):
    arm.set_register(3, "drive_mode", 0)         # as if a servo had been swapped in with factory settings
    arm.set_register(3, "secondary_id", 255)
    backend = WidowXDynamixelBackend(arm.port, config=load_widowx_config())
    try:
        backend.connect()
        for servo_id, master in ((3, 2), (5, 4)):
            assert arm.register(servo_id, "drive_mode") & 1 and arm.register(servo_id, "secondary_id") == master
        for servo_id in range(1, 10):
            assert arm.register(servo_id, "operating_mode") == 3
            assert (arm.register(servo_id, "profile_velocity"), arm.register(servo_id, "profile_acceleration")) == (131, 15)
            assert not arm.torque_enabled(servo_id)
    finally:
        backend.close()


def test_read_agrees_with_the_twin(arm, backend):
    reading = backend.read()
    twin = arm.joint_positions()
    assert reading.position[:6] == pytest.approx(twin[:6], abs=2 * TICK)
    assert reading.position[6] == pytest.approx(twin[6] / 2, abs=1e-4)
    assert reading.velocity.shape == reading.effort.shape == (7,)
    assert reading.stamp == pytest.approx(time.monotonic(), abs=1.0)


def test_torque_on_does_not_jump_and_writes_move_the_arm(arm, backend):
    before = backend.read().position
    backend.write(before + np.array([1.0, 0.5, 0.5, 1.0, 0.5, 1.0, -0.01]))  # ignored with torque off
    backend.set_torque(True)
    time.sleep(0.3)
    after = backend.read().position
    unloaded = [0, 3, 5]  # joints gravity does not pull: any drift there is a jump
    assert after[unloaded] == pytest.approx(before[unloaded], abs=2 * TICK)
    assert after == pytest.approx(before, abs=ARM_TOLERANCE)  # the rest sag by the servos' tracking error

    targets = before.copy()
    targets[0] += 0.4
    targets[4] -= 0.3
    targets[6] = 0.02
    backend.write(targets)
    reached = _wait_until(backend, targets)
    assert reached[:6] == pytest.approx(targets[:6], abs=ARM_TOLERANCE)
    assert reached[6] == pytest.approx(0.02, abs=GRIPPER_TOLERANCE)
    twin = arm.joint_positions()
    assert twin[[0, 4]] == pytest.approx(targets[[0, 4]], abs=ARM_TOLERANCE)
    assert twin[6] / 2 == pytest.approx(0.02, abs=GRIPPER_TOLERANCE)
    assert arm.torque_enabled(3) and arm.torque_enabled(5)  # shadows too


def test_ctrl_c_inside_a_transaction_still_lets_the_torque_go_off(arm, backend):
    """SIGINT lands while the SDK holds the port (its busy flag set): the shutdown's torque-off must still go out."""
    backend.set_torque(True)

    def interrupted_transaction():
        backend._port.is_using = True  # what the SDK sets at the start of every packet
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backend._call("a sync read", interrupted_transaction)
    backend.set_torque(False)  # a sync write: no status packet, so the servos apply it a moment later
    deadline = time.monotonic() + 1.0
    while any(arm.torque_enabled(i) for i in backend.servo_ids):
        assert time.monotonic() < deadline, "the torque-off never reached the servos"
        time.sleep(0.01)


def test_write_rejects_a_wrong_shape(backend):
    with pytest.raises(ValueError, match="expected 7 values"):
        backend.write(np.zeros(6))


def test_silenced_servo_is_named_within_bounded_time(arm, backend):
    arm.silence(6)
    start = time.monotonic()
    with pytest.raises(BackendFault, match=r"ID 6 \(forearm_roll\)"):
        backend.read()
    assert time.monotonic() - start < 1.0
    arm.unsilence(6)
    backend.clear_fault()
    assert backend.read().position.shape == (7,)


def test_overload_is_reported_and_clear_fault_reboots(arm, backend):
    backend.set_torque(True)
    arm.set_overload(4)
    with pytest.raises(BackendFault, match=r"ID 4 \(elbow\).*overload"):
        backend.read()
    backend.clear_fault()
    assert arm.register(4, "hardware_error_status") == 0
    assert arm.register(4, "profile_velocity") == 131  # configuration re-applied after the reboot
    assert not any(arm.torque_enabled(i) for i in range(1, 10))
    assert backend.read().position == pytest.approx(backend.read().position, abs=0.01)
    backend.set_torque(True)
    backend.read()  # the bus answers in order: the sync write before it has been executed
    assert arm.torque_enabled(4)


def test_clear_fault_names_a_servo_that_stays_silent(arm, backend):
    arm.silence(5)
    with pytest.raises(BackendFault, match=r"ID 5 \(elbow shadow\)"):
        backend.read()
    with pytest.raises(BackendFault, match=r"ID 5 \(elbow shadow\).*did not come back"):
        backend.clear_fault()


def test_unplug_raises_backend_faults_and_replug_recovers(arm, backend):
    targets = backend.read().position
    arm.unplug()
    for call in (backend.read, lambda: backend.write(targets)):
        start = time.monotonic()
        with pytest.raises(BackendFault, match="serial port"):
            call()
        assert time.monotonic() - start < 1.0
    with pytest.raises(BackendFault, match="cannot open"):
        backend.clear_fault()
    arm.replug()
    backend.clear_fault()
    assert backend.read().position == pytest.approx(targets, abs=0.01)


def test_wrong_model_in_config_names_the_id(arm):
    config = copy.deepcopy(load_widowx_config())
    config["joints"]["wrist_rotate"]["model"] = "XM430-W350"
    backend = WidowXDynamixelBackend(arm.port, config=config)
    try:
        with pytest.raises(BackendFault, match=r"ID 8 \(wrist_rotate\) is model number 1060 \(XL430-W250\)"):
            backend.connect()
    finally:
        backend.close()


def test_missing_port_names_the_port_and_the_fix(tmp_path):
    missing = str(tmp_path / "ttyDXL")
    backend = WidowXDynamixelBackend(missing, config=load_widowx_config())
    with pytest.raises(BackendFault, match="udev rule") as raised:
        backend.connect()
    assert missing in str(raised.value)


def _fault_of_a_read_loop(backend, fault) -> tuple[str, float, object]:
    """Read back to back in a thread (a sync read is in flight most of the time), apply ``fault``, and
    return the message of the BackendFault the loop ends with, its time.monotonic(), and what fault returned."""
    import threading

    caught, started = {"message": "no fault", "at": float("inf")}, threading.Event()

    def loop():
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            started.set()
            try:
                backend.read()
            except BackendFault as e:
                caught.update(message=str(e), at=time.monotonic())
                return

    reader = threading.Thread(target=loop, daemon=True)
    reader.start()
    started.wait(5.0)
    outcome = fault()
    reader.join(timeout=15.0)
    return caught["message"], caught["at"], outcome


def test_an_unplug_mid_read_is_named_a_lost_port_every_time(arm, backend):
    """The pty hangs up as a pulled U2D2 does, whatever the driver is doing: never 'did not answer'.

    A fault raised before the hang-up is not about the unplug: the emulator, a process on this busy host,
    answered one read too late while still plugged in (named a silent bus, correctly). Such a try does not
    count; five must see the hang-up."""
    seen = early = 0
    while seen < 5:
        message, raised_at, hung_up_at = _fault_of_a_read_loop(backend, arm.unplug)
        if raised_at < hung_up_at:
            assert "no servo answered" in message, message
            with pytest.raises(BackendFault, match="lost the serial port"):  # the driver sees the hang-up now
                backend.read()
            early += 1
            assert early <= 5, "the emulator fell silent before the unplug in 5 tries: is the host overloaded?"
        else:
            assert "lost the serial port" in message and "did not answer" not in message, message
            seen += 1
        arm.replug()
        backend.clear_fault()
        assert backend.read().position.shape == (7,)


def test_a_silent_bus_is_named_as_such_after_the_retries(arm, backend):
    def power_off():
        for servo_id in backend.servo_ids:
            arm.silence(servo_id)

    message, _, _ = _fault_of_a_read_loop(backend, power_off)
    assert "no servo answered" in message and f"the port is there; {backend.comm_retries + 1} tries" in message, message
    for servo_id in backend.servo_ids:
        arm.unsilence(servo_id)
    backend.clear_fault()
    assert backend.read().position.shape == (7,)


def test_one_sync_read_that_nobody_answers_in_time_is_not_a_fault(arm, backend, monkeypatch):
    """A loaded host's USB path (here: the emulator process) can deliver one read's answers too late; the
    read is repeated before a silent bus is declared. The bus really is silent for the first try: the servos
    come back on as that try ends (a spy around the real transaction, the real SDK on the real pty)."""
    for servo_id in backend.servo_ids:
        arm.silence(servo_id)
    real_read, tries = backend._sync_read_once, []

    def first_try_silent():
        answers = real_read()
        if not tries:
            for servo_id in backend.servo_ids:
                arm.unsilence(servo_id)
        tries.append(len(answers[0]))
        return answers

    monkeypatch.setattr(backend, "_sync_read_once", first_try_silent)
    assert backend.read().position.shape == (7,)
    assert tries == [0, len(backend.servo_ids)]
