"""The robot-independent ROS 2 driver node: a Backend behind a SafetyFilter, joint and end-effector commands.

    backend.connect()
    node = DriverNode(backend, SafetyFilter(limits, control_period=0.2), home=home_q, ee_controller=ctl)
    rclpy.spin(node)
    node.shutdown_backend()   # torque off, close

Topics and services (names are relative: they follow the node's namespace and remaps):

| name                 | kind    | type                              | rate                           | QoS                                            |
|----------------------|---------|-----------------------------------|--------------------------------|------------------------------------------------|
| `joint_states`       | publish | sensor_msgs/JointState            | bus rate (default 50 Hz)       | sensor data: best effort, volatile, last 5     |
| `diagnostics`        | publish | diagnostic_msgs/DiagnosticArray   | 1 Hz, and at once on a fault   | reliable, volatile, last 10                    |
| `command_applied`    | publish | sensor_msgs/JointState            | each target a command wrote    | reliable, volatile, last 10                    |
| `ee_command_applied` | publish | sensor_msgs/JointState (7, named) | each ee_delta_command          | reliable, volatile, last 10                    |
| `joint_command`      | subscr. | sensor_msgs/JointState            | any (a position goal)          | reliable, volatile, last 10                    |
| `ee_delta_command`   | subscr. | std_msgs/Float64MultiArray (7)    | the command rate (Bridge 5 Hz) | reliable, volatile, last 10                    |
| `estop`              | subscr. | std_msgs/Bool                     | event                          | reliable, transient local, last 1 (+ volatile) |
| `home`               | service | std_srvs/Trigger                  | -                              | services default                               |
| `enable_torque`      | service | std_srvs/SetBool                  | -                              | services default                               |
| `reset_estop`        | service | std_srvs/Trigger                  | -                              | services default                               |
| `clear_fault`        | service | std_srvs/Trigger                  | -                              | services default                               |

- `joint_states`: positions (rad; a gripper: one finger's slide in m), velocities and efforts as the
  backend reads them, stamped with the node clock at read time. Subscribers must use best effort
  (a reliable subscription does not match a best-effort publisher).
- `command_applied`: the joint target actually written to the backend because of a command (after the
  safety filter), stamped with the node clock at write time; names are the joint names. Sent for every
  ``ee_delta_command``, for a ``joint_command`` or ``home`` goal and for each bus tick that pursues such a
  goal; not for the ticks that resend an unchanged target or hold (watchdog, e-stop), nor for a refused
  NaN command. A command's target is written at once, in its callback (not at the next bus tick).
- `ee_command_applied`: for each ``ee_delta_command``, the normalized 7-D action the node actually
  executed, with the same stamp as its ``command_applied``: names ``dx, dy, dz, droll, dpitch, dyaw,
  gripper``, values in ``position``. It is the move of the controller's commanded pose (so it includes the
  controller's workspace and tilt clipping) divided by ``ee_action_scale`` (m and rad per unit, default
  the Bridge 0.05 m and 0.25 rad; robot_rl.drivers.applied_action), and the gripper as sent. When the safety filter scales or clips the target (step, velocity or joint
  limits), it is recomputed from the filtered target, and the controller restarts from that target, so
  the next command moves from where the arm was allowed to go (no hidden catch-up later). When the
  filter holds (e-stop, workspace refusal) it is zeros with the held gripper. A recorder stores this,
  not the command asked for: a clipped command is recorded clipped.
- `joint_command`: a position goal by joint name (a subset is allowed: the other joints keep their
  present target; names may be left empty when every joint is given, in joint order). The goal goes
  through ``SafetyFilter.filter``; when the filter rate-limits it, the node re-filters the goal on every
  bus tick until the safe target arrives (so one message moves the arm all the way, at the filter's
  velocity limits). A newer command, the e-stop, torque off or a fault drops the goal.
- `ee_delta_command`: 7 values (dx, dy, dz, droll, dpitch, dyaw in [-1, 1], normalized; gripper in
  [-1, 1], absolute opening), the Bridge convention of ``DeltaPoseController``; IK in the node. A stream:
  each message is filtered once; the bus ticks resend its target until the watchdog holds. The
  controller restarts from the measured joints whenever the stream was interrupted. Non-finite values
  reach the filter as a NaN command (refused, counted "nan_rejected").
- `estop`: True latches the filter's e-stop (hold at the measured position); False does nothing (only
  `reset_estop` clears it). Subscribed twice: transient local, so an e-stop latched by a publisher before
  this node started is honored, and volatile, so a plain (volatile) publisher still matches.
- `home`: a joint goal at the home pose. `enable_torque`: torque on starts from the measured position
  (the filter is re-anchored there: no jump); while torque is off commands are dropped and nothing is
  written. `clear_fault`: backend.clear_fault(), then a read; on success the node leaves the fault state
  with torque off and the e-stop still latched, holding at the measured position.
- Backend faults (BackendFault in read or write): no more writes, the e-stop latches, an ERROR
  diagnostic goes out at once and then every second until `clear_fault` succeeds.
- `diagnostics`: one status (level OK, WARN with the e-stop latched, ERROR in a fault) with key/values:
  safety intervention counts per kind, safety state, e-stop, fault, torque, bus rate achieved, time since
  the last accepted command, and commands the node dropped (torque off, fault, malformed).

The safety filter's clock is time.monotonic(); the joint_states stamps are the node clock. All
callbacks share the node's default (mutually exclusive) callback group, so no locking is needed. Spin it
on a single-threaded executor (rclpy.spin): measured here, rclpy's MultiThreadedExecutor busy-waits
while a callback of that group runs (up to 1.25 cores) and the 50 Hz bus loop then falls to ~15 Hz.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from robot_rl.drivers.applied_action import ActionScale, applied_action, pose_of
from robot_rl.drivers.backend import Backend, BackendFault, JointReading
from robot_rl.drivers.safety import Intervention, SafetyFilter

COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
EE_ACTION_DIM = 7
EE_ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
DIAGNOSTICS_PERIOD = 1.0  # s
RATE_LIMITED = (Intervention.STEP_LIMIT, Intervention.VELOCITY_LIMIT)


class EndEffectorController(Protocol):
    target_pos: np.ndarray   # the commanded end-effector position (m) ...
    target_quat: np.ndarray  # ... and orientation (w, x, y, z): what ee_command_applied measures moves of

    def reset(self, q: np.ndarray, opening: float) -> None: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float]: ...


class DriverNode(Node):
    """Reads the backend at the bus rate, publishes joint states, writes the safety filter's targets."""

    def __init__(self, backend: Backend, safety: SafetyFilter, home: Sequence[float], *,
                 ee_controller: EndEffectorController | None = None,
                 opening_from_gripper: Callable[[float], float] | None = None,
                 ee_action_scale: tuple[float, float] | None = None,
                 rate_hz: float = 50.0, hardware_id: str = "", node_name: str = "driver", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.backend, self.safety = backend, safety
        self.joint_names = tuple(backend.joint_names)
        self._check_configuration(home, rate_hz)
        self.home = np.asarray(home, dtype=float)
        self.ee_controller = ee_controller
        self.opening_from_gripper = opening_from_gripper
        self.ee_action_scale = ActionScale(*(ee_action_scale or _bridge_action_scale()))
        self.rate_hz = float(rate_hz)
        self.hardware_id = hardware_id or type(backend).__name__
        self.torque_enabled = False
        self.fault: str | None = None
        self.dropped = {"torque_off": 0, "fault": 0, "malformed": 0}
        self._measured: np.ndarray | None = None
        self._target: np.ndarray | None = None
        self._goal: np.ndarray | None = None
        self._ee_streaming = False
        self._ticks, self._window_start, self._bus_rate = 0, time.monotonic(), 0.0
        self._create_interfaces()
        if self._read():  # a first measurement before any command (or a fault from the start)
            self._warm_up_ee_controller()

    def _check_configuration(self, home, rate_hz):
        if tuple(self.safety.limits.joint_names) != self.joint_names:
            raise ValueError(f"joint names: the backend has {self.joint_names}, the safety limits "
                             f"{self.safety.limits.joint_names}; build both for the same robot")
        if np.shape(home) != (len(self.joint_names),):
            raise ValueError(f"home: expected {len(self.joint_names)} values for {self.joint_names}, "
                             f"found shape {np.shape(home)}")
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz: expected a positive bus rate in Hz, found {rate_hz}")

    def _create_interfaces(self):
        self.joint_state_pub = self.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", COMMAND_QOS)
        self.command_applied_pub = self.create_publisher(JointState, "command_applied", COMMAND_QOS)
        self.ee_command_applied_pub = self.create_publisher(JointState, "ee_command_applied", COMMAND_QOS)
        self.create_subscription(JointState, "joint_command", self._on_joint_command, COMMAND_QOS)
        self.create_subscription(Float64MultiArray, "ee_delta_command", self._on_ee_delta_command, COMMAND_QOS)
        self.create_subscription(Bool, "estop", self._on_estop, LATCHED_QOS)
        self.create_subscription(Bool, "estop", self._on_estop, COMMAND_QOS)
        self.create_service(Trigger, "home", self._on_home)
        self.create_service(SetBool, "enable_torque", self._on_enable_torque)
        self.create_service(Trigger, "reset_estop", self._on_reset_estop)
        self.create_service(Trigger, "clear_fault", self._on_clear_fault)
        self.bus_timer = self.create_timer(1.0 / self.rate_hz, self._on_bus_tick)
        self.diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD, self.publish_diagnostics)

    # --- the bus loop ---------------------------------------------------------------------------

    def _on_bus_tick(self):
        self._ticks += 1
        if not self._read() or self.fault is not None or not self.torque_enabled:
            return
        now = time.monotonic()
        pursuing = self._goal is not None
        if pursuing:
            self._pursue_goal(now)
        result = self.safety.tick(self._measured, now)
        if result.state != "normal":
            self._ee_streaming = False
        self._target = result.target
        self._write(result.target)
        if pursuing:
            self._publish_applied(result.target)

    def _read(self) -> bool:
        try:
            reading = self.backend.read()
        except BackendFault as err:
            if self.fault is None:
                self._enter_fault(f"read failed: {err}")
            return False
        self._measured = np.asarray(reading.position, dtype=float)
        self._publish_joint_state(reading)
        return True

    def _write(self, target: np.ndarray):
        try:
            self.backend.write(target)
        except BackendFault as err:
            self._enter_fault(f"write failed: {err}")

    def _publish_joint_state(self, reading: JointReading):
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(self.joint_names)
        msg.position = np.asarray(reading.position, dtype=float).tolist()
        msg.velocity = np.asarray(reading.velocity, dtype=float).tolist()
        msg.effort = np.asarray(reading.effort, dtype=float).tolist()
        self.joint_state_pub.publish(msg)

    def _write_command_target(self, target: np.ndarray):
        """A command's filtered target goes to the backend at once, not at the next bus tick."""
        self._target = target
        self._write(target)

    def _publish_applied(self, target: np.ndarray, ee_action: np.ndarray | None = None):
        if self.fault is not None:  # the write failed: nothing was applied
            return
        stamp = self.get_clock().now().to_msg()
        msg = JointState(name=list(self.joint_names), position=np.asarray(target, dtype=float).tolist())
        msg.header.stamp = stamp
        self.command_applied_pub.publish(msg)
        if ee_action is not None:
            msg = JointState(name=list(EE_ACTION_NAMES), position=np.asarray(ee_action, dtype=float).tolist())
            msg.header.stamp = stamp
            self.ee_command_applied_pub.publish(msg)

    def _pursue_goal(self, now: float):
        result = self.safety.filter(self._goal, self._measured, now)
        if not any(kind in RATE_LIMITED for kind in result.interventions):
            self._goal = None  # arrived, or refused (e-stop, workspace): nothing left to pursue

    # --- commands -------------------------------------------------------------------------------

    def _on_joint_command(self, msg: JointState):
        if not self._accepting_commands("joint_command"):
            return
        command = self._joint_command_vector(msg)
        if command is not None:
            self._start_goal(command)

    def _joint_command_vector(self, msg: JointState) -> np.ndarray | None:
        names, positions = list(msg.name), np.asarray(msg.position, dtype=float)
        if not names and positions.shape == (len(self.joint_names),):
            return positions
        unknown = sorted(set(names) - set(self.joint_names))
        if unknown or len(names) != len(positions) or len(set(names)) != len(names):
            return self._malformed(f"joint_command: expected distinct names from {self.joint_names} with one "
                                   f"position each, found names {names} and {len(positions)} positions")
        command = self._present_target()
        for name, value in zip(names, positions):
            command[self.joint_names.index(name)] = value
        return command

    def _start_goal(self, command: np.ndarray):
        self._goal, self._ee_streaming = None, False
        result = self.safety.filter(command, self._measured, time.monotonic())
        if any(kind in RATE_LIMITED for kind in result.interventions):
            limits = self.safety.limits
            self._goal = np.clip(command, limits.lower, limits.upper)  # clipping counted once, here
        self._write_command_target(result.target)
        self._publish_applied(result.target)

    def _on_ee_delta_command(self, msg: Float64MultiArray):
        action = np.asarray(msg.data, dtype=float)
        if action.shape != (EE_ACTION_DIM,):
            self._malformed(f"ee_delta_command: expected {EE_ACTION_DIM} values (dxyz, drpy, gripper), "
                            f"found {action.size}")
            return
        if self.ee_controller is None:
            self._malformed("ee_delta_command: this driver has no end-effector controller")
            return
        if not self._accepting_commands("ee_delta_command"):
            return
        self._goal = None
        if not np.all(np.isfinite(action)):  # never into the controller: its target would stay NaN
            self.safety.filter(np.full(len(self.joint_names), np.nan), self._measured, time.monotonic())
            return
        if not self._ee_streaming:
            self._reset_ee_controller()
        before = pose_of(self.ee_controller)
        arm_q, finger = self.ee_controller.step(action)
        requested = np.append(arm_q, finger)
        result = self.safety.filter(requested, self._measured, time.monotonic())
        self._ee_streaming = result.state == "normal"
        applied = self._applied_ee_action(action, requested, result, before)
        self._write_command_target(result.target)
        self._publish_applied(result.target, applied)

    def _applied_ee_action(self, action: np.ndarray, requested: np.ndarray, result, before) -> np.ndarray:
        """The normalized action the filtered target carries out (see ee_command_applied)."""
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
        self.ee_controller.reset(self._measured[:-1].copy(), self._opening(float(self._measured[-1])))

    def _warm_up_ee_controller(self):
        """The first IK call compiles or loads compiled code (numba): do it here, not in the first command's
        callback, which would stall the bus loop and bunch the next commands together."""
        if self.ee_controller is not None:
            self._reset_ee_controller()
            self.ee_controller.step(np.zeros(EE_ACTION_DIM))

    def _accepting_commands(self, source: str) -> bool:
        reason = "fault" if self.fault is not None else None if self.torque_enabled else "torque_off"
        if reason is None:
            return True
        self.dropped[reason] += 1
        self.get_logger().warning(f"{source} dropped: {'backend fault' if reason == 'fault' else 'torque is off'}",
                               throttle_duration_sec=2.0)
        return False

    def _malformed(self, message: str) -> None:
        self.dropped["malformed"] += 1
        self.get_logger().warning(message, throttle_duration_sec=2.0)
        return None

    def _present_target(self) -> np.ndarray:
        if self._goal is not None:
            return self._goal.copy()
        return (self._measured if self._target is None else self._target).copy()

    # --- e-stop, services -----------------------------------------------------------------------

    def _on_estop(self, msg: Bool):
        if not msg.data:
            self.get_logger().info("estop False ignored: the e-stop clears only through reset_estop")
            return
        if not self.safety.estopped:
            self.get_logger().warning("e-stop latched from the estop topic")
        self.safety.estop("estop topic", self._measured)
        self._goal, self._ee_streaming = None, False

    def _on_home(self, request, response):
        refusal = self._motion_refusal()
        if refusal is None:
            self._start_goal(self.home.copy())
        return self._respond(response, refusal is None, refusal or "moving home at the safety filter's limits")

    def _motion_refusal(self) -> str | None:
        if self.fault is not None:
            return f"backend fault: {self.fault}; call clear_fault"
        if not self.torque_enabled:
            return "torque is off; call enable_torque"
        if self.safety.estopped:
            return "e-stop latched; call reset_estop"
        return None

    def _on_enable_torque(self, request, response):
        return self._respond(response, *self.enable_torque(bool(request.data)))

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

    def _on_reset_estop(self, request, response):
        if self.fault is not None:
            return self._respond(response, False, f"backend fault: {self.fault}; call clear_fault first")
        self.safety.reset_estop()
        return self._respond(response, True, "e-stop reset; holding until the next command")

    def _on_clear_fault(self, request, response):
        try:
            self.backend.clear_fault()
            reading = self.backend.read()
        except BackendFault as err:
            return self._respond(response, False, f"fault persists: {err}")
        self._measured = np.asarray(reading.position, dtype=float)
        self._anchor_hold()
        self.fault, self.torque_enabled = None, False  # backends keep torque off after clear_fault
        self.get_logger().info("backend fault cleared")
        self.publish_diagnostics()
        return self._respond(response, True, "fault cleared; torque is off and the e-stop stays latched: "
                                             "call enable_torque, then reset_estop")

    def _anchor_hold(self):
        """Make the filter hold the measured position, keeping an e-stop latched if it is: after a fault
        or with torque off the arm may have moved, and the old hold would be a jump.

        The filter's public API has no "hold here": an e-stop latched at ``measured`` and reset does it.
        """
        reason = self.safety.report()["estop_reason"] if self.safety.estopped else None
        self.safety.reset_estop()
        self.safety.estop(reason or "re-anchor at the measured position", self._measured)
        if reason is None:
            self.safety.reset_estop()
        self._target = self._measured.copy()

    @staticmethod
    def _respond(response, success: bool, message: str):
        response.success, response.message = success, message
        return response

    # --- faults and diagnostics -----------------------------------------------------------------

    def _enter_fault(self, message: str):
        self.fault = message
        self._goal, self._ee_streaming = None, False
        if self._measured is not None:
            self.safety.estop(f"backend fault: {message}", self._measured)
        else:
            self.safety.estop(f"backend fault: {message}")
        self.get_logger().error(f"backend fault: {message}; holding, call clear_fault")
        self.publish_diagnostics()

    def publish_diagnostics(self):
        now = time.monotonic()
        if self._window_start < now:
            self._bus_rate = self._ticks / (now - self._window_start)
        self._ticks, self._window_start = 0, now
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self._status(now)]
        self.diagnostics_pub.publish(msg)

    def _status(self, now: float) -> DiagnosticStatus:
        report = self.safety.report(now)
        if self.fault is not None:
            level, message = DiagnosticStatus.ERROR, f"backend fault: {self.fault}"
        elif self.safety.estopped:
            level, message = DiagnosticStatus.WARN, f"e-stop latched: {report['estop_reason']}"
        else:
            level, message = DiagnosticStatus.OK, "running" if self.torque_enabled else "torque off"
        since = report["time_since_last_command"]
        values = {**{kind.value: report[kind.value] for kind in Intervention},
                  "safety_state": report["state"], "estop_latched": report["estop_latched"],
                  "estop_reason": report["estop_reason"], "fault": self.fault is not None,
                  "fault_message": self.fault or "", "torque_enabled": self.torque_enabled,
                  "bus_rate_hz": f"{self._bus_rate:.1f}", "bus_rate_target_hz": f"{self.rate_hz:.1f}",
                  "time_since_last_command_s": "never" if since is None else f"{since:.3f}",
                  **{f"dropped_{reason}": count for reason, count in self.dropped.items()}}
        return DiagnosticStatus(level=level, name=f"{self.get_name()}: driver", message=message,
                                hardware_id=self.hardware_id,
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    # --- shutdown -------------------------------------------------------------------------------

    def shutdown_backend(self):
        """Stop the timers, turn torque off (best effort: the bus may be gone) and close the backend."""
        self.bus_timer.cancel()
        self.diagnostics_timer.cancel()
        try:
            self.backend.set_torque(False)
        except BackendFault as err:
            self.get_logger().warning(f"torque off failed at shutdown: {err}")
        self.torque_enabled = False
        self.backend.close()


def _bridge_action_scale() -> tuple[float, float]:
    """Metres and radians per unit of a normalized ee action, the Bridge convention (WidowX: 0.05, 0.25)."""
    from robot_rl.sim.widowx.robot import MAX_DELTA_POS, MAX_DELTA_ROT

    return MAX_DELTA_POS, MAX_DELTA_ROT
