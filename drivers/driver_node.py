"""The robot-independent ROS 2 driver node: topics and services over a CommandArbiter (a Backend behind a
SafetyFilter; robot_rl.drivers.command_arbiter holds the command, e-stop and fault behaviours).

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

- `joint_states`: each bus tick's reading (CommandArbiter.tick): positions (rad; a gripper: one finger's
  slide in m), velocities and efforts as the backend reads them, stamped with the node clock at read time.
  Subscribers must use best effort (a reliable subscription does not match a best-effort publisher).
- `command_applied`: the joint target actually written because of a command (after the safety filter),
  stamped with the node clock at write time, named by joint: for every accepted ``ee_delta_command``,
  ``joint_command`` and ``home`` goal, and for each bus tick that pursues such a goal; not for the ticks
  that resend an unchanged target or hold (watchdog, e-stop), nor for a refused (NaN, dropped) command.
- `ee_command_applied`: for each accepted ``ee_delta_command``, the normalized 7-D action executed
  (CommandArbiter.ee_delta: clipped commands are reported clipped), with the same stamp as its
  ``command_applied``; names ``dx, dy, dz, droll, dpitch, dyaw, gripper``, values in ``position``.
- `joint_command`: a position goal by joint name (CommandArbiter.joint_goal; names may be empty when every
  joint is given). `ee_delta_command`: 7 values (CommandArbiter.ee_delta).
- `estop`: True latches the e-stop; False does nothing (only `reset_estop` clears it). Subscribed twice:
  transient local, so an e-stop latched by a publisher before this node started is honored, and volatile,
  so a plain (volatile) publisher still matches.
- `home`, `enable_torque`, `reset_estop`, `clear_fault`: the arbiter's methods of those names.
- A backend fault: an ERROR diagnostic goes out at once and then every second until `clear_fault` succeeds.
- `diagnostics`: one status with CommandArbiter.status's level, message and key/values, plus the target
  bus rate.

The safety filter's clock is time.monotonic(); the joint_states stamps are the node clock. All
callbacks share the node's default (mutually exclusive) callback group, so no locking is needed. Spin it
on a single-threaded executor (rclpy.spin): measured here, rclpy's MultiThreadedExecutor busy-waits
while a callback of that group runs (up to 1.25 cores) and the 50 Hz bus loop then falls to ~15 Hz.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from robot_rl.drivers.backend import Backend
from robot_rl.drivers.command_arbiter import (  # noqa: F401  (EE_ACTION_NAMES: the recorder imports it here)
    EE_ACTION_NAMES,
    Applied,
    CommandArbiter,
    EndEffectorController,
    Refusal,
)
from robot_rl.drivers.safety import SafetyFilter

COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTICS_PERIOD = 1.0  # s
WARN_EVERY_S = 2.0  # throttle for the warnings about refused commands


class DriverNode(Node):
    """Ticks the arbiter at the bus rate and turns its readings, targets and status into messages."""

    def __init__(self, backend: Backend, safety: SafetyFilter, home: Sequence[float], *,
                 ee_controller: EndEffectorController | None = None,
                 opening_from_gripper: Callable[[float], float] | None = None,
                 ee_action_scale: tuple[float, float] | None = None,
                 rate_hz: float = 50.0, hardware_id: str = "", node_name: str = "driver", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz: expected a positive bus rate in Hz, found {rate_hz}")
        # The arbiter reads once now; a fault from the start is reported once the publishers exist.
        self.arbiter = CommandArbiter(backend, safety, home, ee_controller=ee_controller,
                                      opening_from_gripper=opening_from_gripper,
                                      ee_action_scale=ee_action_scale)
        self.backend, self.safety, self.joint_names = backend, safety, self.arbiter.joint_names
        self.rate_hz = float(rate_hz)
        self.hardware_id = hardware_id or type(backend).__name__
        self._create_interfaces()
        self.arbiter.on_fault = self._on_fault
        if self.arbiter.fault is not None:
            self._on_fault(self.arbiter.fault)

    @property
    def fault(self) -> str | None:
        return self.arbiter.fault

    def enable_torque(self, enabled: bool = True) -> tuple[bool, str]:
        """Torque on (from the measured position: no jump) or off; returns (success, message)."""
        return self.arbiter.enable_torque(enabled)

    def _create_interfaces(self):
        self.joint_state_pub = self.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", COMMAND_QOS)
        self.command_applied_pub = self.create_publisher(JointState, "command_applied", COMMAND_QOS)
        self.ee_command_applied_pub = self.create_publisher(JointState, "ee_command_applied", COMMAND_QOS)
        self.create_subscription(JointState, "joint_command", lambda msg: self._publish_outcome(
            "joint_command", self.arbiter.joint_goal(msg.name, msg.position)), COMMAND_QOS)
        self.create_subscription(Float64MultiArray, "ee_delta_command", lambda msg: self._publish_outcome(
            "ee_delta_command", self.arbiter.ee_delta(msg.data)), COMMAND_QOS)
        self.create_subscription(Bool, "estop", self._on_estop, LATCHED_QOS)
        self.create_subscription(Bool, "estop", self._on_estop, COMMAND_QOS)
        self._serve(Trigger, "home", lambda _: self.arbiter.home())
        self._serve(SetBool, "enable_torque", lambda request: self.enable_torque(bool(request.data)))
        self._serve(Trigger, "reset_estop", lambda _: self.arbiter.reset_estop())
        self._serve(Trigger, "clear_fault", lambda _: self._clear_fault())
        self.bus_timer = self.create_timer(1.0 / self.rate_hz, self._on_bus_tick)
        self.diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD, self.publish_diagnostics)

    def _serve(self, kind, name: str, action: Callable[[object], tuple[bool, str]]):
        """A service whose response is ``action(request)``'s (success, message)."""
        def handle(request, response):
            response.success, response.message = action(request)
            return response

        self.create_service(kind, name, handle)

    def _on_bus_tick(self):
        tick = self.arbiter.tick()
        if tick.reading is not None:
            msg = JointState(name=list(self.joint_names), position=_floats(tick.reading.position),
                             velocity=_floats(tick.reading.velocity), effort=_floats(tick.reading.effort))
            age = Duration(nanoseconds=max(0, round(1e9 * (time.monotonic() - tick.reading.stamp))))
            msg.header.stamp = (self.get_clock().now() - age).to_msg()  # the node clock at read time
            self.joint_state_pub.publish(msg)
        if tick.applied is not None:
            self._publish_applied(Applied(tick.applied))

    def _publish_outcome(self, topic: str, outcome: Applied | Refusal):
        if isinstance(outcome, Refusal):
            self.get_logger().warning(f"{topic}: {outcome.message}", throttle_duration_sec=WARN_EVERY_S)
        else:
            self._publish_applied(outcome)

    def _publish_applied(self, applied: Applied):
        stamp = self.get_clock().now().to_msg()
        msg = JointState(name=list(self.joint_names), position=_floats(applied.target))
        msg.header.stamp = stamp
        self.command_applied_pub.publish(msg)
        if applied.ee_action is not None:
            msg = JointState(name=list(EE_ACTION_NAMES), position=_floats(applied.ee_action))
            msg.header.stamp = stamp
            self.ee_command_applied_pub.publish(msg)

    def _on_estop(self, msg: Bool):
        if not msg.data:
            self.get_logger().info("estop False ignored: the e-stop clears only through reset_estop")
            return
        if not self.arbiter.estopped:
            self.get_logger().warning("e-stop latched from the estop topic")
        self.arbiter.estop("estop topic")

    def _clear_fault(self) -> tuple[bool, str]:
        ok, message = self.arbiter.clear_fault()
        if ok:
            self.get_logger().info("backend fault cleared")
            self.publish_diagnostics()
        return ok, message

    def _on_fault(self, message: str):
        self.get_logger().error(f"backend fault: {message}; holding, call clear_fault")
        self.publish_diagnostics()

    def publish_diagnostics(self):
        level, message, values = self.arbiter.status()
        values["bus_rate_target_hz"] = f"{self.rate_hz:.1f}"
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [DiagnosticStatus(level=bytes([level]), name=f"{self.get_name()}: driver",
                                       message=message, hardware_id=self.hardware_id,
                                       values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])]
        self.diagnostics_pub.publish(msg)

    def shutdown_backend(self):
        """Stop the timers, turn torque off (best effort: the bus may be gone) and close the backend."""
        self.bus_timer.cancel()
        self.diagnostics_timer.cancel()
        error = self.arbiter.shutdown()
        if error is not None:
            self.get_logger().warning(error)


def _floats(values) -> list[float]:
    return np.asarray(values, dtype=float).tolist()
