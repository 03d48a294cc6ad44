"""The RC car's numbers: geometry of the MJCF model and the VESC conversions the driver will share.

Car facts from DESIGN.md (F1TENTH-style, public specifications): wheelbase about 0.33 m, steering
about +-0.38 rad, VESC speed_to_erpm_gain 4614, steering_angle_to_servo gain -1.2135 and offset 0.5304,
servo range 0.15-0.85. The model in sim/assets/rc_car/car.xml is built to these.
"""
from __future__ import annotations

import numpy as np

ROBOT_NAME = "rc_car"
CONTROL_RATE_HZ = 20.0    # within the car's 10-50 Hz
ACTION_DIM = 2            # (steering, throttle)

WHEELBASE = 0.33          # m, front to rear axle
TRACK = 0.28              # m, left to right wheel centre
WHEEL_RADIUS = 0.05       # m
STEER_LIMIT = 0.38        # rad, bicycle-model steering angle at full lock (the servo command range)
MAX_SPEED = 3.0           # m/s, target speed at full throttle (VESC speed mode)
BODY_HALF_LENGTH = 0.25   # m, the collision box of the body (bumper to bumper / 2)
BODY_HALF_WIDTH = 0.165   # m, (outside of the tyres) / 2

SPEED_TO_ERPM_GAIN = 4614.0           # ERPM per m/s
SPEED_TO_ERPM_OFFSET = 0.0
STEERING_TO_SERVO_GAIN = -1.2135      # servo units per rad
STEERING_TO_SERVO_OFFSET = 0.5304     # servo position for straight ahead
SERVO_MIN, SERVO_MAX = 0.15, 0.85


def action_to_vesc(action) -> tuple[float, float]:
    """A normalized (steering, throttle) action as the VESC commands (ERPM, servo position).

    Throttle is a target speed (VESC speed mode): throttle * MAX_SPEED m/s, times the ERPM gain.
    Steering is the bicycle-model angle steering * STEER_LIMIT rad through the servo map, clipped to
    the servo's range (which on the stock gains is narrower than +-0.38 rad to the left).
    """
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (2,) or not np.all(np.isfinite(action)):
        raise ValueError(f"action: expected 2 finite numbers (steering, throttle) in [-1, 1], found {action}")
    steering, throttle = np.clip(action, -1.0, 1.0)
    erpm = SPEED_TO_ERPM_GAIN * throttle * MAX_SPEED + SPEED_TO_ERPM_OFFSET
    servo = STEERING_TO_SERVO_GAIN * steering * STEER_LIMIT + STEERING_TO_SERVO_OFFSET
    return float(erpm), float(np.clip(servo, SERVO_MIN, SERVO_MAX))


def erpm_to_speed(erpm: float) -> float:
    """The VESC's reported motor ERPM as the car's speed in m/s."""
    return (float(erpm) - SPEED_TO_ERPM_OFFSET) / SPEED_TO_ERPM_GAIN
