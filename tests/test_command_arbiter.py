"""The driver's command / e-stop / fault state machine without ROS: a CommandArbiter over the WidowX MuJoCo
twin, physics stepped by the test (real_time=False) and the safety filter's clock given by the test, so
every case is deterministic. rclpy is not imported here.

The backend is the real twin, subclassed to record each target it is written (a spy: the twin still
receives them) and, as the one stand-in, to fail read and write with BackendFault while ``unplugged`` is
set: a fault cannot be had from the twin otherwise (the real unplug path, a serial port that stops
answering, is tested with the Dynamixel protocol twin in the Dynamixel backend's tests).
"""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from robot_rl.drivers.backend import BackendFault
from robot_rl.drivers.command_arbiter import Applied, CommandArbiter, Level, Refusal
from robot_rl.drivers.safety import SafetyFilter, widowx_limits
from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.control import DeltaPoseController

COMMAND_PERIOD = 0.2  # the Bridge rate: max_step is max_velocity x this
BUS_PERIOD = 0.02
HOME = np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1])


class Twin(WidowXTwinBackend):
    """The twin, recording its writes; read and write raise BackendFault while ``unplugged`` is set."""

    def __init__(self):
        super().__init__(task="reach", seed=0, real_time=False)
        self.written: list[np.ndarray] = []
        self.unplugged = False

    def read(self):
        if self.unplugged:
            raise BackendFault("no status packet from servo 1 (test: unplugged)")
        return super().read()

    def write(self, targets):
        if self.unplugged:
            raise BackendFault("no status packet from servo 1 (test: unplugged)")
        self.written.append(np.array(targets, dtype=float))
        super().write(targets)


class Rig:
    """An arbiter over the twin, and the test's clock: ``run(seconds)`` steps physics and ticks."""

    def __init__(self):
        self.twin = Twin()
        self.faults: list[str] = []
        self.safety = SafetyFilter(widowx_limits(control_period=COMMAND_PERIOD), control_period=COMMAND_PERIOD)
        self.arbiter = CommandArbiter(self.twin, self.safety, HOME, ee_controller=DeltaPoseController(),
                                      opening_from_gripper=lambda finger: float(wx.width_to_opening(2 * finger)),
                                      on_fault=self.faults.append)
        self.now = 100.0

    def run(self, seconds: float) -> list:
        """Tick the bus for ``seconds``; the targets the ticks applied for a goal (None for the others)."""
        applied = []
        for _ in range(round(seconds / BUS_PERIOD)):
            self.twin.step(BUS_PERIOD)
            self.now += BUS_PERIOD
            applied.append(self.arbiter.tick(self.now).applied)
        return applied

    def torque_on(self):
        assert self.arbiter.enable_torque(True) == (True, "torque on")

    def values(self) -> dict:
        return self.arbiter.status(self.now)[2]


@pytest.fixture
def rig():
    rig = Rig()
    yield rig
    rig.arbiter.shutdown()


def test_importable_without_ros(tmp_path):
    code = ("import sys; import robot_rl.drivers.command_arbiter; "
            "assert 'rclpy' not in sys.modules, 'command_arbiter pulled in rclpy'")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=60)


def test_configuration_mismatch_names_the_key():
    twin = Twin()
    try:
        safety = SafetyFilter(widowx_limits(), control_period=COMMAND_PERIOD)
        with pytest.raises(ValueError, match="home: expected 7 values"):
            CommandArbiter(twin, safety, HOME[:6])
    finally:
        twin.close()


def test_torque_off_drops_commands_and_writes_nothing(rig):
    a = rig.arbiter
    assert a.joint_goal(["waist"], [0.5], rig.now) == Refusal("torque_off", "dropped: torque is off")
    assert a.ee_delta(np.zeros(7), rig.now).reason == "torque_off"
    assert a.home() == (False, "torque is off; call enable_torque")
    tick = a.tick(rig.now)
    assert tick.reading is not None and tick.applied is None
    assert rig.twin.written == []
    assert a.dropped == {"torque_off": 2, "fault": 0, "malformed": 0}
    assert rig.arbiter.status(rig.now)[:2] == (Level.OK, "torque off")


def test_malformed_commands_are_refused_and_counted(rig):
    rig.torque_on()
    a = rig.arbiter
    assert a.joint_goal(["waist", "elbow_typo"], [0.1, 0.2], rig.now).reason == "malformed"
    assert a.joint_goal(["waist", "waist"], [0.1, 0.2], rig.now).reason == "malformed"
    refusal = a.ee_delta(np.zeros(6), rig.now)
    assert refusal.reason == "malformed" and "expected 7 values" in refusal.message
    assert a.dropped["malformed"] == 3 and rig.twin.written == []


def test_nan_command_is_refused_counted_and_drops_the_goal(rig):
    rig.torque_on()
    a = rig.arbiter
    start = a.measured.copy()
    moving = a.joint_goal(["waist"], [start[0] + 1.0], rig.now)
    assert isinstance(moving, Applied)
    written = len(rig.twin.written)
    assert a.joint_goal(["waist"], [math.nan], rig.now).reason == "nan_rejected"
    assert a.ee_delta([0, 0, math.inf, 0, 0, 0, 1], rig.now).reason == "nan_rejected"
    assert len(rig.twin.written) == written, "a refused command wrote a target"
    assert rig.values()["nan_rejected"] == 2 and rig.values()["dropped_malformed"] == 0
    assert all(applied is None for applied in rig.run(0.4)), "the goal survived a newer (NaN) command"
    assert abs(a.measured[0] - moving.target[0]) < 0.05, "the arm went on past the last accepted target"


def test_joint_goal_is_clipped_to_the_limits_once_and_pursued_at_the_velocity_limit(rig):
    rig.torque_on()
    a = rig.arbiter
    limits = rig.safety.limits
    start = a.measured.copy()
    first = a.joint_goal(["wrist_rotate"], [4.0], rig.now)  # the limit is pi
    # The first move starts from the measured position: one control period's step, no more.
    assert first.target[5] - start[5] == pytest.approx(limits.max_step[5])
    np.testing.assert_array_equal(np.delete(first.target, 5), np.delete(a.measured, 5))
    counts = rig.values()
    assert counts["joint_limit"] == 1 and counts["step_limit"] == 1
    applied = rig.run(2.5)
    pursued = [t for t in applied if t is not None]
    steps = np.diff([first.target[5], *(t[5] for t in pursued)])
    assert np.all(steps > 0) and np.all(steps <= limits.max_velocity[5] * BUS_PERIOD + 1e-9)
    assert pursued[-1][5] == pytest.approx(math.pi), "the goal did not arrive at the joint limit"
    assert applied[-1] is None, "a goal still pursued after it arrived"
    assert rig.values()["joint_limit"] == 1, "the clipping was counted again on the ticks"
    assert rig.values()["velocity_limit"] >= len(pursued) - 1
    assert abs(a.measured[5] - math.pi) < 0.02


def test_watchdog_holds_at_the_measured_position_when_commands_stop(rig):
    rig.torque_on()
    a = rig.arbiter
    sent = a.ee_delta([0, 0, 0.5, 0, 0, 0, 1.0], rig.now)
    assert isinstance(sent, Applied)
    rig.run(0.4)
    assert rig.values()["safety_state"] == "normal" and rig.twin.written[-1] is not None
    np.testing.assert_array_equal(rig.twin.written[-1], sent.target)  # the ticks resend the command's target
    rig.run(0.2)  # past the 0.5 s watchdog
    values = rig.values()
    assert values["safety_state"] == "watchdog_hold" and values["watchdog_hold"] == 1
    assert float(values["time_since_last_command_s"]) > 0.5
    held = rig.twin.written[-1]
    rig.run(0.2)
    assert rig.values()["watchdog_hold"] == 1, "the hold is counted once per trip"
    np.testing.assert_array_equal(rig.twin.written[-1], held)
    # A new stream restarts the controller from the measured joints: a small action is applied as sent.
    action = np.array([0.2, 0, 0, 0, 0, 0, 1.0])
    np.testing.assert_allclose(a.ee_delta(action, rig.now).ee_action, action, atol=1e-6)


def test_estop_latches_holds_and_clears_only_by_reset(rig):
    rig.torque_on()
    a = rig.arbiter
    rig.run(0.1)
    at_stop = a.measured.copy()
    a.estop("test button")
    level, message, values = a.status(rig.now)
    assert level == Level.WARN and message == "e-stop latched: test button" and values["estop_latched"]
    during = a.joint_goal(["waist"], [at_stop[0] + 0.5], rig.now)
    np.testing.assert_array_equal(during.target, at_stop)  # a command during the e-stop writes the hold
    held = a.ee_delta([1.0, 0, 0, 0, 0, 0, 1.0], rig.now)
    np.testing.assert_allclose(held.ee_action[:6], 0.0)  # nothing moved
    assert a.home() == (False, "e-stop latched; call reset_estop")
    assert all(t is None for t in rig.run(0.5))
    np.testing.assert_array_equal(rig.twin.written[-1], at_stop)
    a.estop("a second press")
    assert a.status(rig.now)[1] == "e-stop latched: test button", "a second e-stop replaced the first reason"
    assert a.reset_estop() == (True, "e-stop reset; holding until the next command")
    assert isinstance(a.joint_goal(["waist"], [at_stop[0] + 0.5], rig.now), Applied)
    assert any(t is not None for t in rig.run(0.2)), "no goal pursued after reset_estop"
    assert a.measured[0] > at_stop[0] + 0.2


def test_ee_delta_applied_is_the_request_unclipped_and_recomputed_when_clipped(rig):
    rig.torque_on()
    a = rig.arbiter
    small = np.array([0.2, 0.0, -0.1, 0.0, 0.1, 0.0, 1.0])
    first = a.ee_delta(small, rig.now)
    np.testing.assert_allclose(first.ee_action, small, atol=1e-6)
    np.testing.assert_array_equal(rig.twin.written[-1], first.target)  # written at once, not at the next tick
    rig.run(COMMAND_PERIOD)
    # Closing the gripper asks 22 mm of finger travel; the filter allows 10 mm per command and scales the
    # whole move (arm included) by the same factor.
    clipped = a.ee_delta([1.0, 0, 0, 0, 0, 0, -1.0], rig.now).ee_action
    assert 0.1 < clipped[0] < 0.9, f"dx {clipped[0]:.3f}: not the clipped move"
    assert -0.9 < clipped[6] < 0.9, f"gripper {clipped[6]:.3f}: not the clipped gripper"
    np.testing.assert_allclose(clipped[1:6], 0.0, atol=0.05)
    values = rig.values()
    assert values["step_limit"] + values["velocity_limit"] == 1  # the two bounds are equal at the command rate
    rig.run(COMMAND_PERIOD)
    # The controller restarted from the filtered target: a zero move does not catch up on the clipped x.
    after = a.ee_delta([0, 0, 0, 0, 0, 0, -1.0], rig.now).ee_action
    assert abs(after[0]) < 0.02, f"dx {after[0]:.3f}: the clipped part of the last command came back"
    assert after[6] < clipped[6], "the gripper keeps closing"


def test_executed_actions_stay_within_the_action_bounds_under_an_erratic_policy(rig):
    """An untrained policy's full-scale, direction-flipping actions: the filter bounds many of them, and each
    executed action (what the recorder stores) is still one a policy can output."""
    rig.torque_on()
    rng = np.random.default_rng(0)
    executed = []
    for _ in range(100):
        executed.append(rig.arbiter.ee_delta(rng.choice([-1.0, 1.0], size=7), rig.now).ee_action)
        rig.run(COMMAND_PERIOD)
    values = rig.values()
    assert values["step_limit"] + values["velocity_limit"] > 10, "the case should exercise the filter"
    assert np.all(np.abs(executed) <= 1.0), np.abs(executed).max()


def test_backend_fault_latches_a_stop_reports_error_and_clears_without_a_jump(rig):
    rig.torque_on()
    a, twin = rig.arbiter, rig.twin
    goal = a.measured[0] + 1.2
    a.joint_goal(["waist"], [goal], rig.now)
    rig.run(0.3)  # mid-motion: the goal is still ahead
    twin.unplugged = True
    assert a.tick(rig.now).reading is None
    rig.run(0.1)
    assert len(rig.faults) == 1 and "unplugged" in rig.faults[0], "on_fault once per fault"
    level, message, values = a.status(rig.now)
    assert level == Level.ERROR and message.startswith("backend fault: read failed") and values["fault"]
    assert values["estop_latched"] and a.estopped
    assert a.joint_goal(["waist"], [goal], rig.now) == Refusal("fault", "dropped: backend fault")
    assert a.ee_delta(np.zeros(7), rig.now).reason == "fault"
    assert a.dropped["fault"] == 2
    assert not a.enable_torque(True)[0] and not a.reset_estop()[0]
    assert a.clear_fault() == (False, "fault persists: no status packet from servo 1 (test: unplugged)")

    twin.unplugged = False
    rig.run(0.3)  # the twin keeps its last target meanwhile: the arm is not where the filter held it
    cleared = a.measured.copy()
    ok, message = a.clear_fault()
    assert ok and "torque is off and the e-stop stays latched" in message
    assert a.fault is None and not a.torque_enabled and a.estopped
    assert a.status(rig.now)[0] == Level.WARN
    rig.torque_on()
    assert a.reset_estop()[0]
    rig.run(0.4)
    np.testing.assert_array_equal(twin.written[-1], cleared)  # holds where the arm was at clear_fault
    assert a.measured[0] < goal - 0.2, "the old goal came back after the fault"


def test_a_write_fault_applies_nothing(rig):
    rig.torque_on()
    rig.twin.unplugged = True
    outcome = rig.arbiter.ee_delta([0.2, 0, 0, 0, 0, 0, 1.0], rig.now)
    assert outcome.reason == "fault" and "write failed" in outcome.message
    assert len(rig.faults) == 1 and rig.arbiter.status(rig.now)[0] == Level.ERROR
    rig.twin.unplugged = False


def test_shutdown_turns_torque_off_and_closes():
    rig = Rig()
    rig.torque_on()
    assert rig.arbiter.shutdown() is None
    assert not rig.arbiter.torque_enabled and not rig.twin.torque
