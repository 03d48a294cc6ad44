"""Safety filter: the last stop between every command source (teleop, policy, scripts) and a backend.

    limits = widowx_limits(control_period=0.2)
    safety = SafetyFilter(limits, control_period=0.2)
    result = safety.filter(command_q, measured_q, now)   # on every fresh command
    result = safety.tick(measured_q, now)                # on every control cycle
    backend.send(result.target)

Robot-independent: it works on joint-position targets of any robot; everything robot-specific comes in
a ``SafetyLimits``. Only numpy and the standard library (no ROS, no torch, no MuJoCo at import time).
Safety limits are never optional: there is no switch that turns a rule off.

Rules of ``filter(command_q, measured_q, now)``, in this order:

1. E-stop latched: the command is ignored; the output is a hold at the measured position at the time
   of the e-stop ("estop_hold", counted on every call while latched, tick() included).
2. NaN/inf anywhere in the command: the command is refused; the output holds the last safe target, or
   the measured position if there is none ("nan_rejected"). A refused command is not fresh: it does
   not feed the watchdog.
3. Joint limits: each joint is clipped into [lower, upper] ("joint_limit").
4. Step and velocity limits: the move starts from the reference, the last safe target, or the measured
   position on the first command, after a hold, after an e-stop reset, or when the last accepted
   command is older than the watchdog timeout. The allowed move of joint i is
   min(max_step[i], max_velocity[i] * dt), dt being the time since the last accepted command (the
   control period when the move starts from the measured position; 0 when the clock went backwards).
   A move that exceeds it on any joint is scaled down uniformly, all joints by the same factor, so the
   direction of motion in joint space is kept and the joints arrive together ("step_limit" when the
   per-cycle step was the binding bound, "velocity_limit" when max_velocity * dt was).
5. Workspace (only with a forward kinematics ``fk`` and a box): a target whose end effector lies
   outside the box is refused, and the output holds the reference ("workspace"). A move is allowed
   anyway when it brings the end effector strictly closer to the box than the reference is, so an
   arm that starts outside (or was pushed out) can always come back. Targets are refused rather than
   projected: a projection onto a Cartesian box is ill-defined in joint space.

Otherwise the (clipped, scaled) target is accepted: it becomes the last safe target and the watchdog
is fed.

Watchdog: ``tick(measured_q, now)``, called every control cycle, returns the target to (re)send. When
no command was accepted for longer than ``watchdog_timeout``, the output becomes a hold at the
measured position of that cycle (not the stale target), counted once per trip ("watchdog_hold");
later ticks keep that hold without counting again. A new command resumes normal filtering, rate
limited from the measured position. Before the first command, tick() holds the measured position of
its first call (state "idle", nothing counted).

E-stop: ``estop(reason)`` latches until ``reset_estop()``; reset is always allowed (the cause is the
operator's to clear) and the first command after it is rate limited from the measured position.

Gripper joints are joints like any other (position, step and velocity limits). Every intervention on
a call is listed in ``SafetyResult.interventions`` and counted in ``counts``; ``report()`` gives the
counts, the e-stop state and the time since the last accepted command for diagnostics.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

# XM430-W350 no-load speed: 46 rpm at 12 V (ROBOTIS e-Manual) = 4.8 rad/s. Under load and for
# learning-time safety we allow a third of it: pi/2 rad/s on every arm joint.
WIDOWX_ARM_MAX_VELOCITY = math.pi / 2
# The gripper target is one finger's slide in metres (the twin's FINGER_LIMITS, 15..37 mm); 0.05 m/s
# crosses the full 22 mm stroke in about 0.45 s, the speed of the Interbotix gripper at its default
# pressure (our choice, no public number).
WIDOWX_GRIPPER_MAX_VELOCITY = 0.05
WIDOWX_WATCHDOG_TIMEOUT = 0.5  # s: 2.5 cycles at the Bridge rate of 5 Hz


class Intervention(StrEnum):
    NAN_REJECTED = "nan_rejected"
    JOINT_LIMIT = "joint_limit"
    STEP_LIMIT = "step_limit"
    VELOCITY_LIMIT = "velocity_limit"
    WORKSPACE = "workspace"
    WATCHDOG_HOLD = "watchdog_hold"
    ESTOP_HOLD = "estop_hold"


class SafetyError(ValueError):
    """Bad limits or bad input to the safety filter."""


@dataclass(frozen=True)
class SafetyLimits:
    """Everything robot-specific the filter needs. Arrays are per joint, in ``joint_names`` order."""

    joint_names: tuple[str, ...]
    lower: np.ndarray            # rad (m for prismatic joints)
    upper: np.ndarray
    max_velocity: np.ndarray     # rad/s (m/s)
    max_step: np.ndarray         # rad (m) per control cycle
    watchdog_timeout: float      # s without a fresh command before holding
    fk: Callable[[np.ndarray], np.ndarray] | None = None   # joint target -> end-effector xyz (m)
    workspace_low: np.ndarray | None = None
    workspace_high: np.ndarray | None = None

    def __post_init__(self):
        names = tuple(self.joint_names)
        object.__setattr__(self, "joint_names", names)
        for key in ("lower", "upper", "max_velocity", "max_step"):
            object.__setattr__(self, key, _per_joint(getattr(self, key), key, names))
        for name, lo, hi in zip(names, self.lower, self.upper):
            if lo > hi:
                raise SafetyError(f"joint {name!r}: lower limit {lo} is above upper limit {hi}; swap them")
        for key in ("max_velocity", "max_step"):
            bad = [n for n, v in zip(names, getattr(self, key)) if v <= 0]
            if bad:
                raise SafetyError(f"{key} must be > 0 for every joint; found <= 0 for {bad}")
        if not (math.isfinite(self.watchdog_timeout) and self.watchdog_timeout > 0):
            raise SafetyError(f"watchdog_timeout must be a positive number of seconds, found {self.watchdog_timeout}")
        self._check_workspace()

    @property
    def has_workspace(self) -> bool:
        return self.fk is not None

    def _check_workspace(self):
        parts = (self.fk, self.workspace_low, self.workspace_high)
        if all(p is None for p in parts):
            return
        if any(p is None for p in parts):
            raise SafetyError("workspace: give fk, workspace_low and workspace_high together (or none of them)")
        low = np.asarray(self.workspace_low, dtype=float)
        high = np.asarray(self.workspace_high, dtype=float)
        if low.shape != (3,) or high.shape != (3,) or not np.all(np.isfinite(low) & np.isfinite(high)):
            raise SafetyError(f"workspace box: expected finite xyz low and high, found {low} and {high}")
        if np.any(low > high):
            raise SafetyError(f"workspace box: low {low} is above high {high} on some axis")
        object.__setattr__(self, "workspace_low", low)
        object.__setattr__(self, "workspace_high", high)


def _per_joint(values, key: str, names: tuple[str, ...]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:  # one value for every joint
        arr = np.full(len(names), float(arr))
    if arr.shape != (len(names),):
        raise SafetyError(f"{key}: expected {len(names)} values, one per joint {names}, found shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SafetyError(f"{key}: expected finite values, found {arr}")
    return arr


@dataclass
class SafetyResult:
    """The joint target allowed to go to the hardware, and what the filter did to get it."""

    target: np.ndarray
    interventions: list[Intervention] = field(default_factory=list)
    state: str = "normal"   # "normal", "idle", "watchdog_hold" or "estop"


class SafetyFilter:
    def __init__(self, limits: SafetyLimits, control_period: float):
        if not (math.isfinite(control_period) and control_period > 0):
            raise SafetyError(f"control_period must be a positive number of seconds, found {control_period}")
        self.limits = limits
        self.control_period = float(control_period)
        self.counts: dict[str, int] = {kind.value: 0 for kind in Intervention}
        self._target: np.ndarray | None = None        # last output, the hold when nothing is fresh
        self._from_measured = True                     # next move starts at the measured position
        self._last_command_time: float | None = None
        self._last_now: float | None = None
        self._state = "idle"
        self._estop_reason: str | None = None
        self._estop_hold: np.ndarray | None = None

    # --- commands -------------------------------------------------------------------------------

    def filter(self, command_q, measured_q, now: float) -> SafetyResult:
        """Filter one fresh joint-position command; returns the target allowed to go to the hardware."""
        measured = self._check_q(measured_q, "measured_q", finite=True)
        command = self._check_q(command_q, "command_q", finite=False)
        self._last_now = float(now)
        if self._estop_reason is not None:
            return self._estop_result(measured)
        if not np.all(np.isfinite(command)):
            hold = measured if self._target is None else self._target
            return self._refuse(hold, Intervention.NAN_REJECTED)
        reference, dt = self._reference(measured, now)
        interventions: list[Intervention] = []
        target = self._clip_to_limits(command, interventions)
        target = self._limit_step(reference, target, dt, interventions)
        if not self._workspace_allows(reference, target):
            return self._refuse(reference, Intervention.WORKSPACE, interventions)
        return self._accept(target, now, interventions)

    def tick(self, measured_q, now: float) -> SafetyResult:
        """Called every control cycle: the target to (re)send, holding when the commands went stale."""
        measured = self._check_q(measured_q, "measured_q", finite=True)
        self._last_now = float(now)
        if self._estop_reason is not None:
            return self._estop_result(measured)
        if self._target is None:
            self._target = measured.copy()
        if self._state == "normal" and self._is_stale(now):
            self._target = measured.copy()
            self._from_measured = True
            self._state = "watchdog_hold"
            return self._result(self._target, [Intervention.WATCHDOG_HOLD])
        return self._result(self._target, [])

    # --- e-stop ---------------------------------------------------------------------------------

    def estop(self, reason: str, measured_q=None) -> None:
        """Latch the e-stop. The hold is the measured position given here, or else the one of the next
        call. A second estop() while latched keeps the first reason."""
        if self._estop_reason is not None:
            return
        self._estop_reason = str(reason) or "unspecified"
        self._estop_hold = None if measured_q is None else self._check_q(measured_q, "measured_q", True).copy()
        self._state = "estop"

    def reset_estop(self) -> None:
        """Clear the e-stop; the arm keeps holding until the next command, rate limited from measured."""
        if self._estop_reason is None:
            return
        if self._estop_hold is not None:
            self._target = self._estop_hold
        self._estop_reason, self._estop_hold = None, None
        self._from_measured = True
        self._state = "idle"

    @property
    def estopped(self) -> bool:
        return self._estop_reason is not None

    # --- diagnostics ----------------------------------------------------------------------------

    def report(self, now: float | None = None) -> dict:
        """Counts per intervention kind, e-stop state and time since the last accepted command."""
        now = self._last_now if now is None else now
        since = None if self._last_command_time is None or now is None else now - self._last_command_time
        return {**self.counts, "state": self._state, "estop_latched": self.estopped,
                "estop_reason": self._estop_reason or "", "time_since_last_command": since}

    # --- the rules ------------------------------------------------------------------------------

    def _reference(self, measured: np.ndarray, now: float) -> tuple[np.ndarray, float]:
        if self._from_measured or self._target is None or self._is_stale(now):
            return measured, self.control_period
        return self._target, max(0.0, now - self._last_command_time)

    def _clip_to_limits(self, command: np.ndarray, interventions: list) -> np.ndarray:
        target = np.clip(command, self.limits.lower, self.limits.upper)
        if np.any(target != command):
            interventions.append(Intervention.JOINT_LIMIT)
        return target

    def _limit_step(self, reference: np.ndarray, target: np.ndarray, dt: float, interventions: list):
        velocity_bound = self.limits.max_velocity * dt
        bound = np.minimum(self.limits.max_step, velocity_bound)
        delta = target - reference
        moving = np.abs(delta) > 0
        if not np.any(np.abs(delta) > bound):
            return target
        # bound may be 0 (dt == 0): the joint that cannot move stops every joint.
        ratios = np.where(moving, bound / np.where(moving, np.abs(delta), 1.0), np.inf)
        binding = int(np.argmin(ratios))
        by_velocity = velocity_bound[binding] < self.limits.max_step[binding]
        interventions.append(Intervention.VELOCITY_LIMIT if by_velocity else Intervention.STEP_LIMIT)
        return reference + delta * ratios[binding]

    def _workspace_allows(self, reference: np.ndarray, target: np.ndarray) -> bool:
        if not self.limits.has_workspace:
            return True
        outside = self._box_distance(target)
        return outside == 0.0 or outside < self._box_distance(reference)

    def _box_distance(self, q: np.ndarray) -> float:
        xyz = np.asarray(self.limits.fk(q), dtype=float)
        low, high = self.limits.workspace_low, self.limits.workspace_high
        return float(np.linalg.norm(np.maximum(low - xyz, 0.0) + np.maximum(xyz - high, 0.0)))

    def _is_stale(self, now: float) -> bool:
        last = self._last_command_time
        return last is not None and now - last > self.limits.watchdog_timeout

    # --- outcomes -------------------------------------------------------------------------------

    def _accept(self, target: np.ndarray, now: float, interventions: list) -> SafetyResult:
        self._target = target
        self._from_measured = False
        self._last_command_time = float(now)
        self._state = "normal"
        return self._result(target, interventions)

    def _refuse(self, hold: np.ndarray, kind: Intervention, interventions: list | None = None):
        self._target = hold.copy()
        return self._result(self._target, [*(interventions or []), kind])

    def _estop_result(self, measured: np.ndarray) -> SafetyResult:
        if self._estop_hold is None:
            self._estop_hold = measured.copy()
        return self._result(self._estop_hold, [Intervention.ESTOP_HOLD])

    def _result(self, target: np.ndarray, interventions: list) -> SafetyResult:
        for kind in interventions:
            self.counts[kind.value] += 1
        return SafetyResult(target=target.copy(), interventions=interventions, state=self._state)

    def _check_q(self, q, name: str, finite: bool) -> np.ndarray:
        names = self.limits.joint_names
        try:
            arr = np.asarray(q, dtype=float)
        except (TypeError, ValueError) as err:
            raise SafetyError(f"{name}: expected {len(names)} numbers for joints {names}, found {q!r}") from err
        if arr.shape != (len(names),):
            raise SafetyError(f"{name}: expected {len(names)} joint positions for joints {names}, "
                              f"found shape {arr.shape}")
        if finite and not np.all(np.isfinite(arr)):
            raise SafetyError(f"{name}: non-finite joint positions {arr} for joints {names}; check the sensor")
        return arr


# --- WidowX 250 S -------------------------------------------------------------------------------

def widowx_limits(control_period: float = 0.2, with_workspace: bool = True) -> SafetyLimits:
    """Limits of the WidowX 250 S: 6 arm joints (rad) then the gripper as one finger's slide (m).

    max_step = max_velocity x control_period (default 0.2 s, the Bridge rate). The workspace box is the
    twin's WORKSPACE_LOW/HIGH, checked with the twin's MuJoCo forward kinematics (needs the sim extra).
    """
    from robot_rl.sim.widowx.robot import (
        ARM_LIMITS,
        FINGER_LIMITS,
        JOINT_NAMES,
        WORKSPACE_HIGH,
        WORKSPACE_LOW,
    )

    if not (math.isfinite(control_period) and control_period > 0):
        raise SafetyError(f"control_period must be a positive number of seconds, found {control_period}")
    lower = np.append(ARM_LIMITS[:, 0], FINGER_LIMITS[0])
    upper = np.append(ARM_LIMITS[:, 1], FINGER_LIMITS[1])
    velocity = np.append(np.full(len(ARM_LIMITS), WIDOWX_ARM_MAX_VELOCITY), WIDOWX_GRIPPER_MAX_VELOCITY)
    workspace = {}
    if with_workspace:
        workspace = {"fk": _widowx_fk(len(ARM_LIMITS)), "workspace_low": WORKSPACE_LOW,
                     "workspace_high": WORKSPACE_HIGH}
    return SafetyLimits(joint_names=tuple(JOINT_NAMES), lower=lower, upper=upper, max_velocity=velocity,
                        max_step=velocity * control_period, watchdog_timeout=WIDOWX_WATCHDOG_TIMEOUT,
                        **workspace)


def _widowx_fk(n_arm: int) -> Callable[[np.ndarray], np.ndarray]:
    from robot_rl.sim.widowx.kinematics import WidowXKinematics

    kinematics = WidowXKinematics()

    def fk(q: Sequence[float]) -> np.ndarray:
        return kinematics.forward(np.asarray(q, dtype=float)[:n_arm])[0]

    return fk


# --- Franka Panda / FR3 ---------------------------------------------------------------------------

# The joint limits both arms accept: the Panda's (robot_rl.sim.franka.panda) intersected with the FR3's
# (Franka's "Robot and interface specifications"; franky-sim simulates an FR3).
FR3_JOINT_LIMITS_LOW = np.array([-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159])
FR3_JOINT_LIMITS_HIGH = np.array([2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159])
# Half the Panda's published joint velocity limits (2.175 rad/s on joints 1-4, 2.61 on 5-7): the twin's
# fastest action, 0.03 m per 10 Hz command (0.3 m/s), needs up to ~0.85 rad/s on the elbow near "ready".
FRANKA_ARM_MAX_VELOCITY = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61]) / 2.0
# One finger's slide (m): the Franka Hand moves at up to 0.1 m/s in width (Franka's datasheet), 0.05 per finger.
FRANKA_GRIPPER_MAX_VELOCITY = 0.05
FRANKA_WATCHDOG_TIMEOUT = 0.3  # s: 3 cycles at the 10 Hz control rate
# The workspace the filter checks every joint target against (home, joint goals, ee targets): the twin's
# safety box, which clips every ee target (and holds the "ready" pose), grown by this margin: a rate-limited
# step scales the joints, not the TCP's path, so a joint target between two poses in the box may bow out of it.
FRANKA_WORKSPACE_MARGIN = 0.1


def franka_limits(control_period: float = 0.1) -> SafetyLimits:
    """Limits of the Franka: 7 arm joints (rad) then the gripper as one finger's slide (m, half the width)."""
    from robot_rl.sim.franka import panda

    if not (math.isfinite(control_period) and control_period > 0):
        raise SafetyError(f"control_period must be a positive number of seconds, found {control_period}")
    lower = np.append(np.maximum(panda.JOINT_LIMITS_LOW, FR3_JOINT_LIMITS_LOW), 0.0)
    upper = np.append(np.minimum(panda.JOINT_LIMITS_HIGH, FR3_JOINT_LIMITS_HIGH), panda.GRIPPER_MAX_WIDTH / 2)
    velocity = np.append(FRANKA_ARM_MAX_VELOCITY, FRANKA_GRIPPER_MAX_VELOCITY)
    return SafetyLimits(joint_names=(*panda.JOINT_NAMES, "finger"), lower=lower, upper=upper,
                        max_velocity=velocity, max_step=velocity * control_period,
                        watchdog_timeout=FRANKA_WATCHDOG_TIMEOUT, fk=_franka_fk(),
                        workspace_low=panda.SAFETY_BOX_LOW - FRANKA_WORKSPACE_MARGIN,
                        workspace_high=panda.SAFETY_BOX_HIGH + FRANKA_WORKSPACE_MARGIN)


def _franka_fk() -> Callable[[np.ndarray], np.ndarray]:
    from robot_rl.sim.franka.kinematics import PandaKinematics

    kinematics = PandaKinematics()

    def fk(q: Sequence[float]) -> np.ndarray:
        return kinematics.forward(np.asarray(q, dtype=float)[:7])[0]

    return fk
