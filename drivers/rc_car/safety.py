"""The car's safety core: every drive command (teleop, planner, policy) passes here before the motor. Pure Python.

    safety = CarSafety(CarLimits())
    outcome = safety.command(steering_rad, speed_mps, now)   # on every fresh command
    output = safety.tick(now)                                  # on every bus cycle: what to send
    backend.drive(output.steering, output.speed) if output.drive else backend.brake()

The arm's CommandArbiter filters joint targets; a car commands a speed and a steering angle, so it has a
filter of its own. Rules (none can be switched off):

- A NaN/inf command is refused and not fresh (it does not feed the watchdog).
- Steering is clipped to +-``max_steering``, speed to [-``max_reverse_speed``, ``max_speed``] ("limit").
- Acceleration: the speed sent moves toward the commanded speed by at most ``max_accel`` x dt per tick away
  from zero, ``max_decel`` x dt toward zero ("accel_limit"), dt being the time since the last tick.
- Watchdog: no accepted command for ``watchdog_timeout`` -> brake ("watchdog"), until a new command.
- E-stop: ``estop(reason)`` latches a brake until ``reset_estop()``; commands meanwhile are refused.
- Fault (``fault(message)``, the backend lost or the VESC reporting a fault code): brake; commands refused
  until ``clear_fault()``.
- No lurch: after an e-stop reset or a fault clear the motor stays braked until a command with
  |speed| <= ``zero_band`` arrives: the throttle must come back through zero ("wait_for_zero").

Every intervention is counted in ``counts`` and reported by ``report()``.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from robot_rl.sim.rc_car import constants as car


@dataclass(frozen=True)
class CarLimits:
    max_speed: float = car.MAX_SPEED          # m/s forward: the twin's full throttle
    max_reverse_speed: float = 1.0            # m/s: reversing is blind, kept slow (our choice)
    max_steering: float = car.STEER_LIMIT     # rad
    max_accel: float = 4.0                    # m/s^2 away from zero: ~0.4 g, the tyres' grip without a wheelie
    max_decel: float = 8.0                    # m/s^2 toward zero: braking may be harder (our choices)
    watchdog_timeout: float = 0.25            # s: 5 periods of the 20 Hz control rate
    zero_band: float = 0.05                   # m/s: a command this slow counts as throttle at zero

    def __post_init__(self):
        for name in ("max_speed", "max_reverse_speed", "max_steering", "max_accel", "max_decel", "watchdog_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"CarLimits.{name}: expected a positive number, found {value}")


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    steering: float = 0.0        # rad, after the limits
    speed: float = 0.0           # m/s, the commanded speed after the limits (the tick slews toward it)
    reason: str = ""             # why refused or clipped
    message: str = ""


@dataclass(frozen=True)
class DriveOutput:
    drive: bool                  # False: brake
    steering: float              # rad
    speed: float                 # m/s (0 when braking)
    state: str                   # "drive", "idle", "watchdog", "estop", "fault", "wait_for_zero"


class CarSafety:
    def __init__(self, limits: CarLimits | None = None):
        self.limits = limits or CarLimits()
        self.counts: Counter[str] = Counter()
        self.estop_reason: str | None = None
        self.fault_message: str | None = None
        self._armed = True               # False after an e-stop reset or a fault clear, until a zero throttle
        self._target: tuple[float, float] | None = None  # (steering, speed) commanded
        self._last_command: float | None = None
        self._speed = 0.0                # the speed sent last tick (the slew's start)
        self._steering = 0.0
        self._last_tick: float | None = None
        self._watchdog_tripped = False

    @property
    def estopped(self) -> bool:
        return self.estop_reason is not None

    # --- commands -----------------------------------------------------------------------------
    def command(self, steering: float, speed: float, now: float) -> Outcome:
        if self.estopped:
            self.counts["estop_refused"] += 1
            return Outcome(False, reason="estop", message=f"e-stop latched ({self.estop_reason}): call reset_estop")
        if self.fault_message is not None:
            self.counts["fault_refused"] += 1
            return Outcome(False, reason="fault", message=f"fault: {self.fault_message}; call clear_fault")
        if not (math.isfinite(steering) and math.isfinite(speed)):
            self.counts["nan_rejected"] += 1
            return Outcome(False, reason="nan_rejected", message=f"non-finite drive command ({steering}, {speed}) refused")
        lim = self.limits
        clipped_steering = min(max(steering, -lim.max_steering), lim.max_steering)
        clipped_speed = min(max(speed, -lim.max_reverse_speed), lim.max_speed)
        reason = ""
        if (clipped_steering, clipped_speed) != (steering, speed):
            self.counts["limit"] += 1
            reason = "limit"
        if not self._armed:
            if abs(clipped_speed) > lim.zero_band:
                self.counts["wait_for_zero"] += 1
                return Outcome(False, reason="wait_for_zero",
                               message=f"speed {clipped_speed:.2f} m/s refused: after a reset the throttle must come "
                                       "back through zero first")
            self._armed = True
        self._target = (clipped_steering, clipped_speed)
        self._last_command = now
        self._watchdog_tripped = False
        return Outcome(True, clipped_steering, clipped_speed, reason)

    def estop(self, reason: str = "estop") -> None:
        if self.estop_reason is None:
            self.counts["estop"] += 1
        self.estop_reason = reason
        self._stop()

    def reset_estop(self) -> tuple[bool, str]:
        if self.estop_reason is None:
            return True, "no e-stop was latched"
        self.estop_reason = None
        self._armed = False
        return True, "e-stop reset: the motor stays braked until a zero-speed command"

    def fault(self, message: str) -> None:
        if self.fault_message is None:
            self.counts["fault"] += 1
        self.fault_message = message
        self._stop()

    def clear_fault(self) -> None:
        self.fault_message = None
        self._armed = False

    def _stop(self) -> None:
        self._target = None
        self._speed = 0.0

    # --- the bus cycle ------------------------------------------------------------------------
    def tick(self, now: float) -> DriveOutput:
        dt = 0.0 if self._last_tick is None else max(0.0, now - self._last_tick)
        self._last_tick = now
        if self.estopped:
            return self._brake("estop")
        if self.fault_message is not None:
            return self._brake("fault")
        if not self._armed:
            return self._brake("wait_for_zero")
        if self._target is None:
            return self._brake("idle")
        if now - self._last_command > self.limits.watchdog_timeout:
            if not self._watchdog_tripped:
                self.counts["watchdog"] += 1
                self._watchdog_tripped = True
            self._target = None
            return self._brake("watchdog")
        steering, speed = self._target
        self._speed = self._slew(speed, dt)
        self._steering = steering
        return DriveOutput(True, steering, self._speed, "drive")

    def _slew(self, target: float, dt: float) -> float:
        lim, current = self.limits, self._speed
        delta = target - current
        toward_zero = abs(target) < abs(current) and target * current >= 0
        allowed = (lim.max_decel if toward_zero else lim.max_accel) * dt
        if abs(delta) <= allowed:
            return target
        self.counts["accel_limit"] += 1
        return current + math.copysign(allowed, delta)

    def _brake(self, state: str) -> DriveOutput:
        self._speed = 0.0
        return DriveOutput(False, self._steering, 0.0, state)

    def report(self, now: float) -> dict:
        age = None if self._last_command is None else now - self._last_command
        return {"estop": self.estop_reason or "", "fault": self.fault_message or "", "armed": self._armed,
                "last_command_age_s": "" if age is None else f"{age:.3f}",
                **{f"count_{k}": v for k, v in sorted(self.counts.items())}}
