"""The driver's command / e-stop / fault state machine, without ROS: a Backend behind a SafetyFilter.

    arbiter = CommandArbiter(backend, SafetyFilter(limits, 0.2), home_q, ee_controller=DeltaPoseController())
    arbiter.enable_torque(True)
    every bus period:  arbiter.tick()             # read, pursue a goal, the filter's tick, write
    a command:         arbiter.ee_delta(action)   # -> Applied(target, ee_action) or Refusal(reason, message)
                       arbiter.joint_goal(names, positions), arbiter.home()
    arbiter.estop(reason); arbiter.reset_estop(); arbiter.clear_fault(); arbiter.status(now)
    arbiter.shutdown()                            # torque off, close

robot_rl.drivers.driver_node wraps it in ROS topics and services (the table of names and QoS is there);
the behaviours are these:

- Construction reads the backend once (a first measurement before any command, or a fault from the start)
  and warms up the end-effector controller (its first IK call compiles code: not in the first command).
- ``tick(now)``: read (the reading is returned for ``joint_states`` even in a fault); in a fault or with
  torque off nothing more. Otherwise a pending joint goal is re-filtered, the filter's tick gives the target
  to (re)send (the watchdog holds when commands stop) and it is written. ``Tick.applied`` is the target
  written for a goal pursued on this tick (``command_applied``), None on ticks that resend an unchanged
  target or hold (watchdog, e-stop).
- Every command's filtered target is written at once, not at the next tick.
- ``joint_goal(names, positions)``: a position goal by joint name (a subset is allowed: the other joints
  keep their present target; names may be empty when every joint is given, in joint order). It goes
  through ``SafetyFilter.filter``; when the filter rate-limits it, each tick re-filters the goal until the
  safe target arrives (one command moves the arm all the way, at the filter's velocity limits). A newer
  command, the e-stop, torque off or a fault drops the goal. ``home()`` is a joint goal at the home pose,
  refused (with the reason) in a fault, with torque off or with the e-stop latched.
- ``ee_delta(action)``: 7 values (dx, dy, dz, droll, dpitch, dyaw in [-1, 1], normalized; gripper in
  [-1, 1], absolute opening), the Bridge convention of ``DeltaPoseController``, IK here. A stream: each
  action is filtered once; the ticks resend its target until the watchdog holds. The controller restarts
  from the measured joints whenever the stream was interrupted. ``Applied.ee_action`` is the normalized
  action actually executed: the move of the controller's commanded pose (its workspace and tilt clipping
  included) divided by ``ee_action_scale`` (m and rad per unit, and optionally the rotation convention;
  default the Bridge 0.05 m and 0.25 rad;
  robot_rl.drivers.applied_action), and the gripper as sent. When the safety filter scales or clips the
  target (step, velocity or joint limits) it is recomputed from the filtered target, and the controller
  restarts from that target, so the next action moves from where the arm was allowed to go (no hidden
  catch-up later). When the filter holds (e-stop, workspace refusal) it is zeros with the held gripper.
- Non-finite values in a command (either kind) reach the filter as a NaN command: refused, counted
  "nan_rejected", nothing written, the goal dropped (``Refusal("nan_rejected")``).
- Commands while torque is off or in a fault are dropped and counted (``dropped["torque_off"]``,
  ``dropped["fault"]``); a command of the wrong shape, unknown joint names, or an ee action without an
  end-effector controller is counted ``dropped["malformed"]``. Each is a ``Refusal`` naming the reason.
- ``estop(reason)`` latches the filter's e-stop (hold at the measured position); only ``reset_estop()``
  clears it, refused in a fault. ``enable_torque(True)`` starts from the measured position (the filter is
  re-anchored there: no jump), refused in a fault; while torque is off nothing is written.
- Backend faults (BackendFault in read, write or set_torque): no more writes, the e-stop latches,
  ``fault`` holds the message and ``on_fault(message)`` is called once per fault. ``clear_fault()`` calls
  backend.clear_fault() and reads; on success the fault is left with torque off and the e-stop still
  latched, holding at the measured position (no jump when torque and motion come back).
- ``status(now)``: (Level, message, values): ERROR in a fault, WARN with the e-stop latched, else OK
  ("running" or "torque off"); values: the filter's intervention counts, its state, the e-stop, the fault,
  torque, the tick rate achieved since the previous status() call, the time since the last accepted
  command and the dropped counts.

Not thread-safe: call it from one thread (the driver node's callbacks share one mutually exclusive group).
``now`` arguments are the safety filter's clock, time.monotonic() when left out.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np

from robot_rl.drivers.applied_action import ActionScale, applied_action, pose_of
from robot_rl.drivers.backend import Backend, BackendFault, JointReading
from robot_rl.drivers.safety import Intervention, SafetyFilter, SafetyResult

EE_ACTION_DIM = 7
EE_ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
RATE_LIMITED = (Intervention.STEP_LIMIT, Intervention.VELOCITY_LIMIT)


class EndEffectorController(Protocol):
    target_pos: np.ndarray   # the commanded end-effector position (m) ...
    target_quat: np.ndarray  # ... and orientation (w, x, y, z): what the applied ee action measures moves of

    def reset(self, q: np.ndarray, opening: float) -> None: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float]: ...


class Level(IntEnum):
    """Diagnostic levels, numbered as diagnostic_msgs/DiagnosticStatus numbers them."""
    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class Tick:
    reading: JointReading | None    # None: the read failed (a fault)
    applied: np.ndarray | None      # the target written for a goal pursued on this tick, else None


@dataclass(frozen=True)
class Applied:
    target: np.ndarray                  # the joint target written to the backend (after the filter)
    ee_action: np.ndarray | None = None  # ee_delta only: the normalized 7-D action executed


@dataclass(frozen=True)
class Refusal:
    reason: str    # "torque_off", "fault", "malformed" or "nan_rejected"
    message: str


class CommandArbiter:
    def __init__(self, backend: Backend, safety: SafetyFilter, home: Sequence[float], *,
                 ee_controller: EndEffectorController | None = None,
                 opening_from_gripper: Callable[[float], float] | None = None,
                 ee_action_scale: tuple[float, float] | tuple[float, float, str] | None = None,
                 on_fault: Callable[[str], None] | None = None):
        self.backend, self.safety = backend, safety
        self.joint_names = tuple(backend.joint_names)
        if tuple(safety.limits.joint_names) != self.joint_names:
            raise ValueError(f"joint names: the backend has {self.joint_names}, the safety limits "
                             f"{safety.limits.joint_names}; build both for the same robot")
        if np.shape(home) != (len(self.joint_names),):
            raise ValueError(f"home: expected {len(self.joint_names)} values for {self.joint_names}, "
                             f"found shape {np.shape(home)}")
        self.home_pose = np.asarray(home, dtype=float)
        self.ee_controller = ee_controller
        self.opening_from_gripper = opening_from_gripper
        self.ee_action_scale = ActionScale(*(ee_action_scale or _bridge_action_scale()))
        self.on_fault = on_fault  # called with the message when a fault is entered
        self.torque_enabled = False
        self.fault: str | None = None
        self.dropped = {"torque_off": 0, "fault": 0, "malformed": 0}
        self.measured: np.ndarray | None = None
        self._target: np.ndarray | None = None
        self._goal: np.ndarray | None = None
        self._ee_streaming = False
        self._ticks, self._window_start, self._tick_rate = 0, None, 0.0  # on the callers' clock
        if self._read() is not None:
            self._warm_up_ee_controller()

    @property
    def estopped(self) -> bool:
        return self.safety.estopped

    # --- the bus tick ---------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> Tick:
        """One bus period: read, re-filter a pending goal, the filter's tick, write."""
        now = time.monotonic() if now is None else now
        self._ticks += 1
        if self._window_start is None:
            self._window_start = now
        reading = self._read()
        if reading is None or self.fault is not None or not self.torque_enabled:
            return Tick(reading, None)
        pursuing = self._goal is not None
        if pursuing:
            result = self.safety.filter(self._goal, self.measured, now)
            if not any(kind in RATE_LIMITED for kind in result.interventions):
                self._goal = None  # arrived, or refused (e-stop, workspace): nothing left to pursue
        result = self.safety.tick(self.measured, now)
        if result.state != "normal":
            self._ee_streaming = False
        written = self._write(result.target)
        return Tick(reading, result.target if pursuing and written else None)

    def _read(self) -> JointReading | None:
        try:
            reading = self.backend.read()
        except BackendFault as err:
            if self.fault is None:
                self._enter_fault(f"read failed: {err}")
            return None
        self.measured = np.asarray(reading.position, dtype=float)
        return reading

    def _write(self, target: np.ndarray) -> bool:
        self._target = target
        try:
            self.backend.write(target)
        except BackendFault as err:
            self._enter_fault(f"write failed: {err}")
            return False
        return True

    # --- commands -------------------------------------------------------------------------------

    def joint_goal(self, names: Sequence[str], positions, now: float | None = None) -> Applied | Refusal:
        """A position goal by joint name (all joints in order when ``names`` is empty)."""
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        names, positions = list(names), np.asarray(positions, dtype=float).reshape(-1)
        if not names and positions.shape == (len(self.joint_names),):
            return self._start_goal(positions, now)
        unknown = set(names) - set(self.joint_names)
        if unknown or len(names) != len(positions) or len(set(names)) != len(names):
            return self._malformed(f"expected distinct names from {self.joint_names} with one position each, "
                                   f"found names {names} and {len(positions)} positions")
        command = self._present_target()
        for name, value in zip(names, positions):
            command[self.joint_names.index(name)] = value
        return self._start_goal(command, now)

    def home(self, now: float | None = None) -> tuple[bool, str]:
        """A joint goal at the home pose; (success, message)."""
        refusal = self._motion_refusal()
        if refusal is not None:
            return False, refusal
        outcome = self._start_goal(self.home_pose.copy(), now)
        if isinstance(outcome, Refusal):
            return False, outcome.message
        return True, "moving home at the safety filter's limits"

    def _start_goal(self, command: np.ndarray, now: float | None) -> Applied | Refusal:
        now = time.monotonic() if now is None else now
        self._goal, self._ee_streaming = None, False
        result = self.safety.filter(command, self.measured, now)
        if Intervention.NAN_REJECTED in result.interventions:
            return Refusal("nan_rejected", "non-finite positions refused by the safety filter")
        if any(kind in RATE_LIMITED for kind in result.interventions):
            limits = self.safety.limits
            self._goal = np.clip(command, limits.lower, limits.upper)  # clipping counted once, here
        return self._applied(result.target)

    def ee_delta(self, action, now: float | None = None) -> Applied | Refusal:
        """One normalized 7-D end-effector action of a stream; the target written and the action executed."""
        now = time.monotonic() if now is None else now
        action = np.asarray(action, dtype=float)
        if action.shape != (EE_ACTION_DIM,):
            return self._malformed(f"expected {EE_ACTION_DIM} values (dxyz, drpy, gripper), "
                                   f"found {action.size}")
        if self.ee_controller is None:
            return self._malformed("this driver has no end-effector controller")
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        self._goal = None
        if not np.all(np.isfinite(action)):  # never into the controller: its target would stay NaN
            self.safety.filter(np.full(len(self.joint_names), np.nan), self.measured, now)
            return Refusal("nan_rejected", "non-finite action refused by the safety filter")
        if not self._ee_streaming:
            self._reset_ee_controller()
        before = pose_of(self.ee_controller)
        arm_q, finger = self.ee_controller.step(action)
        requested = np.append(arm_q, finger)
        result = self.safety.filter(requested, self.measured, now)
        self._ee_streaming = result.state == "normal"
        # The filter bounds the move from the measured arm, the action from the commanded pose, which can run
        # ahead of a lagging arm: a filtered step snaps the commanded pose back by that lag, a move no
        # action asks for. The record keeps the nearest action a policy can output.
        executed = np.clip(self._executed_ee_action(action, requested, result, before), -1.0, 1.0)
        return self._applied(result.target, executed)

    def _applied(self, target: np.ndarray, ee_action: np.ndarray | None = None) -> Applied | Refusal:
        if not self._write(target):
            return Refusal("fault", f"backend fault: {self.fault}")  # the write failed: nothing applied
        return Applied(target, ee_action)

    def _executed_ee_action(self, action: np.ndarray, requested: np.ndarray, result: SafetyResult,
                            before) -> np.ndarray:
        if np.array_equal(result.target, requested):
            return applied_action(before, pose_of(self.ee_controller), np.clip(action[-1], -1.0, 1.0),
                                  self.ee_action_scale)
        # The filter changed the target: the controller restarts from what is written, so its commanded
        # pose (and the next command) follows the arm, not the unfiltered request.
        written = result.target
        self.ee_controller.reset(written[:-1].copy(), self._opening(float(written[-1])))
        gripper = 2.0 * self._opening(float(written[-1])) - 1.0
        if result.state != "normal" or Intervention.WORKSPACE in result.interventions:
            return np.append(np.zeros(EE_ACTION_DIM - 1), gripper)  # a hold: nothing moved
        return applied_action(before, pose_of(self.ee_controller), gripper, self.ee_action_scale)

    def _opening(self, gripper: float) -> float:
        """The gripper opening in [0, 1] of a gripper joint value (1.0 without opening_from_gripper)."""
        if self.opening_from_gripper is None:
            return 1.0
        return float(np.clip(self.opening_from_gripper(gripper), 0.0, 1.0))

    def _reset_ee_controller(self):
        self.ee_controller.reset(self.measured[:-1].copy(), self._opening(float(self.measured[-1])))

    def _warm_up_ee_controller(self):
        if self.ee_controller is not None:
            self._reset_ee_controller()
            self.ee_controller.step(np.zeros(EE_ACTION_DIM))

    def _refusal(self) -> Refusal | None:
        """A command dropped (and counted) in a fault or with torque off."""
        if self.fault is not None:
            self.dropped["fault"] += 1
            return Refusal("fault", "dropped: backend fault")
        if not self.torque_enabled:
            self.dropped["torque_off"] += 1
            return Refusal("torque_off", "dropped: torque is off")
        return None

    def _malformed(self, message: str) -> Refusal:
        self.dropped["malformed"] += 1
        return Refusal("malformed", message)

    def _present_target(self) -> np.ndarray:
        if self._goal is not None:
            return self._goal.copy()
        return (self.measured if self._target is None else self._target).copy()

    def _motion_refusal(self) -> str | None:
        if self.fault is not None:
            return f"backend fault: {self.fault}; call clear_fault"
        if not self.torque_enabled:
            return "torque is off; call enable_torque"
        if self.safety.estopped:
            return "e-stop latched; call reset_estop"
        return None

    # --- e-stop, torque, faults -----------------------------------------------------------------

    def estop(self, reason: str) -> None:
        """Latch the e-stop at the measured position; the goal and the ee stream end."""
        self.safety.estop(reason, self.measured)
        self._goal, self._ee_streaming = None, False

    def reset_estop(self) -> tuple[bool, str]:
        if self.fault is not None:
            return False, f"backend fault: {self.fault}; call clear_fault first"
        self.safety.reset_estop()
        return True, "e-stop reset; holding until the next command"

    def enable_torque(self, enabled: bool = True) -> tuple[bool, str]:
        """Torque on (from the measured position: no jump) or off; returns (success, message)."""
        if enabled and self.fault is not None:
            return False, f"backend fault: {self.fault}; call clear_fault first"
        try:
            if enabled:
                self._anchor_hold()
            self.backend.set_torque(enabled)
        except BackendFault as err:
            self._enter_fault(f"set_torque failed: {err}")
            return False, self.fault
        self.torque_enabled = enabled
        self._goal, self._ee_streaming = None, False
        return True, f"torque {'on' if enabled else 'off'}"

    def clear_fault(self) -> tuple[bool, str]:
        try:
            self.backend.clear_fault()
            reading = self.backend.read()
        except BackendFault as err:
            return False, f"fault persists: {err}"
        self.measured = np.asarray(reading.position, dtype=float)
        self._anchor_hold()
        self.fault, self.torque_enabled = None, False  # backends keep torque off after clear_fault
        return True, ("fault cleared; torque is off and the e-stop stays latched: call enable_torque, "
                      "then reset_estop")

    def _anchor_hold(self):
        """Make the filter hold the measured position, keeping an e-stop latched if it is: after a fault
        or with torque off the arm may have moved, and the old hold would be a jump.

        The filter's public API has no "hold here": an e-stop latched at the measured position and reset
        does it.
        """
        reason = self.safety.report()["estop_reason"] if self.safety.estopped else None
        self.safety.reset_estop()
        self.safety.estop(reason or "re-anchor at the measured position", self.measured)
        if reason is None:
            self.safety.reset_estop()
        self._target = self.measured.copy()

    def _enter_fault(self, message: str):
        self.fault = message
        self._goal, self._ee_streaming = None, False
        self.safety.estop(f"backend fault: {message}", self.measured)
        if self.on_fault is not None:
            self.on_fault(message)

    # --- diagnostics, shutdown ------------------------------------------------------------------

    def status(self, now: float | None = None) -> tuple[Level, str, dict]:
        """(level, message, values) for diagnostics; the tick rate is measured since the previous call."""
        now = time.monotonic() if now is None else now
        if self._window_start is not None and self._window_start < now:
            self._tick_rate = self._ticks / (now - self._window_start)
        self._ticks, self._window_start = 0, now
        report = self.safety.report(now)
        if self.fault is not None:
            level, message = Level.ERROR, f"backend fault: {self.fault}"
        elif self.safety.estopped:
            level, message = Level.WARN, f"e-stop latched: {report['estop_reason']}"
        else:
            level, message = Level.OK, "running" if self.torque_enabled else "torque off"
        since = report["time_since_last_command"]
        values = {**{kind.value: report[kind.value] for kind in Intervention},
                  "safety_state": report["state"], "estop_latched": report["estop_latched"],
                  "estop_reason": report["estop_reason"], "fault": self.fault is not None,
                  "fault_message": self.fault or "", "torque_enabled": self.torque_enabled,
                  "bus_rate_hz": f"{self._tick_rate:.1f}",
                  "time_since_last_command_s": "never" if since is None else f"{since:.3f}",
                  **{f"dropped_{reason}": count for reason, count in self.dropped.items()}}
        return level, message, values

    def shutdown(self) -> str | None:
        """Torque off (best effort: the bus may be gone), close the backend; the torque-off error or None."""
        error = None
        try:
            self.backend.set_torque(False)
        except BackendFault as err:
            error = f"torque off failed at shutdown: {err}"
        self.torque_enabled = False
        self.backend.close()
        return error


def _bridge_action_scale() -> tuple[float, float]:
    """Metres and radians per unit of a normalized ee action, the Bridge convention (WidowX: 0.05, 0.25)."""
    from robot_rl.sim.widowx.robot import MAX_DELTA_POS, MAX_DELTA_ROT

    return MAX_DELTA_POS, MAX_DELTA_ROT
