"""The car's bicycle-model odometry (robot_rl.drivers.rc_car.odometry) against closed-form paths."""
from __future__ import annotations

import math

import pytest

from robot_rl.drivers.rc_car.odometry import BicycleOdometry


def test_straight_line():
    odom = BicycleOdometry(wheelbase=0.33)
    for _ in range(100):
        odom.update(1.0, 0.0, 0.01)
    assert (odom.x, odom.y, odom.yaw) == pytest.approx((1.0, 0.0, 0.0))
    assert odom.distance == pytest.approx(1.0)


def test_constant_steering_drives_a_circle_of_the_bicycle_radius():
    wheelbase, steering, speed = 0.33, 0.3, 1.0
    radius = wheelbase / math.tan(steering)
    odom = BicycleOdometry(wheelbase)
    quarter = (math.pi / 2) * radius / speed
    steps = 2000
    for _ in range(steps):
        odom.update(speed, steering, quarter / steps)
    assert odom.yaw == pytest.approx(math.pi / 2, abs=1e-6)
    assert (odom.x, odom.y) == pytest.approx((radius, radius), abs=1e-4)  # a left turn: centre at (0, R)


def test_reverse_and_bad_input():
    odom = BicycleOdometry()
    odom.update(-0.5, 0.0, 1.0)
    assert odom.x == pytest.approx(-0.5) and odom.distance == pytest.approx(0.5)
    assert odom.update(1.0, 0.0, 0.0) == (odom.x, odom.y, odom.yaw)  # no time, no motion
    with pytest.raises(ValueError, match="wheelbase"):
        BicycleOdometry(0.0)
