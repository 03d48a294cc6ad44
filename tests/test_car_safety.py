"""The RC car's safety core (robot_rl.drivers.rc_car.safety): limits, acceleration, watchdog, e-stop, faults,
and no lurch after a reset. Pure: time is passed in."""
from __future__ import annotations

import math

import pytest

from robot_rl.drivers.rc_car.safety import CarLimits, CarSafety

LIMITS = CarLimits(max_speed=3.0, max_reverse_speed=1.0, max_steering=0.38, max_accel=4.0, max_decel=8.0,
                   watchdog_timeout=0.25)


def _run(safety: CarSafety, steering: float, speed: float, start: float, seconds: float, period: float = 0.02):
    """Command and tick at 50 Hz; returns the outputs."""
    outputs, now = [], start
    while now < start + seconds - 1e-9:
        safety.command(steering, speed, now)
        outputs.append(safety.tick(now))
        now += period
    return outputs


def test_speed_and_steering_are_clipped():
    safety = CarSafety(LIMITS)
    outcome = safety.command(1.0, 10.0, 0.0)
    assert outcome.accepted and outcome.reason == "limit"
    assert (outcome.steering, outcome.speed) == (0.38, 3.0)
    assert safety.command(-1.0, -5.0, 0.01).speed == -1.0  # reverse has its own, lower limit
    assert safety.counts["limit"] == 2


def test_acceleration_is_limited_and_braking_may_be_harder():
    safety = CarSafety(LIMITS)
    outputs = _run(safety, 0.0, 3.0, 0.0, 1.0)
    speeds = [o.speed for o in outputs]
    steps = [b - a for a, b in zip(speeds, speeds[1:])]
    assert max(steps) == pytest.approx(4.0 * 0.02)       # max_accel x dt
    assert speeds[-1] == pytest.approx(min(3.0, 4.0 * 0.98), abs=1e-6)
    outputs = _run(safety, 0.0, 0.0, 1.0, 0.2)
    down = [a.speed - b.speed for a, b in zip(outputs, outputs[1:])]
    assert max(down) == pytest.approx(8.0 * 0.02)        # max_decel x dt
    assert safety.counts["accel_limit"] > 0


def test_watchdog_brakes_when_commands_stop():
    safety = CarSafety(LIMITS)
    _run(safety, 0.1, 1.0, 0.0, 0.5)
    assert safety.tick(0.5 + 0.2).drive                   # within the timeout: still driving
    output = safety.tick(0.5 + 0.3)
    assert not output.drive and output.state == "watchdog" and output.speed == 0.0
    assert safety.tick(0.9).state == "idle" and safety.counts["watchdog"] == 1  # counted once per trip
    assert safety.command(0.0, 0.5, 1.0).accepted and safety.tick(1.0).drive


def test_estop_latches_and_the_throttle_must_return_through_zero():
    safety = CarSafety(LIMITS)
    _run(safety, 0.0, 2.0, 0.0, 0.5)
    safety.estop("operator")
    assert safety.tick(0.5).state == "estop"
    assert not safety.command(0.0, 2.0, 0.52).accepted  # latched: refused
    assert safety.tick(0.54).state == "estop"
    ok, _ = safety.reset_estop()
    assert ok
    refused = safety.command(0.0, 2.0, 0.56)             # no lurch: the old throttle is refused
    assert not refused.accepted and refused.reason == "wait_for_zero"
    assert safety.tick(0.56).state == "wait_for_zero"
    assert safety.command(0.0, 0.0, 0.58).accepted        # through zero: armed again
    assert safety.command(0.0, 2.0, 0.60).accepted and safety.tick(0.60).drive


def test_a_fault_brakes_refuses_and_rearms_through_zero():
    safety = CarSafety(LIMITS)
    _run(safety, 0.0, 1.0, 0.0, 0.3)
    safety.fault("lost the VESC's serial port")
    assert safety.tick(0.3).state == "fault"
    assert safety.command(0.0, 1.0, 0.31).reason == "fault"
    safety.clear_fault()
    assert safety.command(0.0, 1.0, 0.32).reason == "wait_for_zero"
    assert safety.command(0.0, 0.02, 0.33).accepted       # within zero_band
    assert safety.tick(0.33).drive


def test_nan_is_refused_and_does_not_feed_the_watchdog():
    safety = CarSafety(LIMITS)
    safety.command(0.0, 1.0, 0.0)
    safety.tick(0.0)
    assert safety.command(math.nan, 1.0, 0.2).reason == "nan_rejected"
    assert safety.tick(0.3).state == "watchdog"


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_accel"):
        CarLimits(max_accel=0.0)
