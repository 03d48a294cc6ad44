"""Wheel odometry of the car: the kinematic bicycle model over the rear-axle speed (VESC ERPM) and the
steering angle. Pure.

    odom = BicycleOdometry(wheelbase=0.33)
    x, y, yaw = odom.update(speed, steering, dt)

The pose is the rear axle's, in the frame of the first update (x forward, y left, yaw counter-clockwise):
the rear axle of a bicycle model moves along its heading, at yaw rate speed x tan(steering) / wheelbase.
Integrated with the midpoint heading (exact for a constant speed and steering over dt up to O(dt^3)).
"""
from __future__ import annotations

import math

from robot_rl.sim.rc_car.constants import WHEELBASE


class BicycleOdometry:
    def __init__(self, wheelbase: float = WHEELBASE):
        if not wheelbase > 0:
            raise ValueError(f"wheelbase: expected a positive length in m, found {wheelbase}")
        self.wheelbase = wheelbase
        self.x = self.y = self.yaw = 0.0
        self.distance = 0.0

    def yaw_rate(self, speed: float, steering: float) -> float:
        return speed * math.tan(steering) / self.wheelbase

    def update(self, speed: float, steering: float, dt: float) -> tuple[float, float, float]:
        if dt <= 0:
            return self.x, self.y, self.yaw
        turn = self.yaw_rate(speed, steering) * dt
        heading = self.yaw + 0.5 * turn
        self.x += speed * dt * math.cos(heading)
        self.y += speed * dt * math.sin(heading)
        self.yaw = math.atan2(math.sin(self.yaw + turn), math.cos(self.yaw + turn))
        self.distance += abs(speed) * dt
        return self.x, self.y, self.yaw
