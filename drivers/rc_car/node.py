"""The RC car robot process: its driver node on the MuJoCo twin or on the VESC over USB serial.

    python -m robot_rl.drivers.rc_car.node --backend vesc --port /dev/ttyACM0 --enable-torque
    python -m robot_rl.drivers.rc_car.node --backend twin --seed 0 --enable-torque

Topics and services (relative names):

| name             | kind    | type                            | rate                      |
|------------------|---------|---------------------------------|---------------------------|
| `drive_command`  | subscr. | std_msgs/Float64MultiArray (2)  | the command rate (20 Hz)  |
| `ee_delta_command` | subscr. | std_msgs/Float64MultiArray (2) | normalized (steering, throttle) in [-1, 1]: a policy's, the scripted planner's |
| `estop`          | subscr. | std_msgs/Bool                   | event (latched + volatile)|
| `odom`           | publish | nav_msgs/Odometry               | bus rate (50 Hz)          |
| `imu`            | publish | sensor_msgs/Imu                 | bus rate                  |
| `state`          | publish | std_msgs/Float32MultiArray (8)  | bus rate: the spec's state|
| `joint_states`   | publish | sensor_msgs/JointState (8, named: sim/rc_car/spec.py STATE_NAMES) | bus rate, best effort |
| `command_applied`| publish | sensor_msgs/JointState          | each accepted command     |
| `ee_command_applied` | publish | sensor_msgs/JointState (steering, throttle) | each accepted command, normalized: what the recorder records |
| `diagnostics`    | publish | diagnostic_msgs/DiagnosticArray | 1 Hz, and at once on a fault |
| `enable_torque`  | service | std_srvs/SetBool                | motor enabled (drive commands accepted) |
| `reset_estop`, `clear_fault` | service | std_srvs/Trigger    | -                         |

`drive_command` is (steering angle rad, + = left; speed m/s, - = reverse): the two fields of
ackermann_msgs/AckermannDrive the car uses. ackermann_msgs has no wheel among the ROS 2 packages on PyPI
that this project installs (std, sensor, geometry, nav, diagnostic, trajectory msgs), so a standard
message carries them. `command_applied` names them ``steering`` and ``speed`` (after the limits).
`ee_delta_command` takes the twin's normalized action instead (steering x 0.38 rad, throttle x 3 m/s: the
arms' topic name, kept so the recorder, the policy node and the scripted operator need no car-specific
topic); every accepted command of either kind goes out as that action on `ee_command_applied`.

With ``--backend twin`` the twin's readers run in this process: ``--cameras`` (a camera node per name),
``--twin-task`` (robot_rl.drivers.twin_task_node), ``--scripted-episodes N`` (the task's scripted planner as
the operator, robot_rl.drivers.rc_car.scripted; the process exits after its episodes), ``--policy RUN_DIR``
(the policy node of a fine-tuning run: from the learner's first online checkpoint on, sampled actions on
``ee_delta_command``, each newer checkpoint reloaded).

Every bus tick sends what the safety core (robot_rl.drivers.rc_car.safety) says, a drive (ERPM + servo) or
a brake, then reads the VESC (values + IMU) and publishes odometry (robot_rl.drivers.rc_car.odometry: the
bicycle model from ERPM and steering), the IMU and the state. Sending every tick also keeps the
VESC's own timeout from stopping the car; set that timeout (VESC Tool: App Settings > General > Timeout)
to 100 ms, so that a pulled cable stops the car within 100 ms without the driver. A lost port or a VESC
fault code: an ERROR diagnostic at once, the motor braked, commands refused until `clear_fault`
(which reconnects) and a zero-speed command. Ctrl-C or SIGTERM: the motor brakes, then the process ends.
Diagnostics WARN on a low battery (under 3.5 V a cell, ``--cells``) or hot FETs/motor.
"""
from __future__ import annotations

import argparse
import math
import time

UNSUPPORTED = ("scripted_takeover",)
TWIN_ONLY = ("cameras", "twin_task", "scripted_episodes", "wait_for_recorder", "dynamics", "policy")
LOW_CELL_V = 3.5
HOT_FET_C, HOT_MOTOR_C = 80.0, 100.0


def parse_args(argv=None) -> argparse.Namespace:
    from robot_rl.drivers.rc_car.robot import DEFINITION

    parser = argparse.ArgumentParser(prog="python -m robot_rl.drivers.rc_car.node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("twin", "vesc"), default="twin")
    parser.add_argument("--port", default="/dev/ttyACM0", help="the VESC's USB serial port (vesc backend)")
    parser.add_argument("--rate", type=float, default=50.0, help="bus rate in Hz: read, publish, send")
    parser.add_argument("--command-rate", type=float, default=20.0, help="the rate drive commands arrive at, Hz")
    parser.add_argument("--enable-torque", action="store_true", help="enable the motor at start")
    parser.add_argument("--cells", type=int, default=3, help="LiPo cells in series (the low-battery warning)")
    parser.add_argument("--name", default="rc_car_driver", help="the node name")
    twin = parser.add_argument_group("twin backend only")
    twin.add_argument("--task", default=DEFINITION.default_task)
    twin.add_argument("--seed", type=int, default=0)
    twin.add_argument("--dynamics", default=None)
    twin.add_argument("--cameras", default="", help="comma-separated twin cameras to publish, e.g. front")
    twin.add_argument("--camera-fps", type=float, default=10.0, help="twin camera publish rate in Hz")
    twin.add_argument("--twin-task", action="store_true", help="publish task_state, reward and success; serve "
                      "reset_task")
    twin.add_argument("--scripted-episodes", type=int, default=0,
                      help="play the task's scripted planner as the operator for this many episodes, then exit")
    twin.add_argument("--wait-for-recorder", action="store_true",
                      help="the scripted operator starts once a recorder listens to its episode events")
    twin.add_argument("--policy", default=None, metavar="RUN_DIR",
                      help="act with the newest checkpoint of this fine-tuning run (sampled actions, hot reload)")
    # The robot layer's common options that the car's process does not serve yet: refused with a reason.
    for option in UNSUPPORTED:
        parser.add_argument(f"--{option.replace('_', '-')}", default=None, nargs="?", const=True, help=argparse.SUPPRESS)
    parser.add_argument("--takeover-budget", default=None, help=argparse.SUPPRESS)
    args, _ros_args = parser.parse_known_args(argv)
    used = [o for o in UNSUPPORTED if getattr(args, o) not in (None, "", "0")]
    if used:
        parser.error(f"--{used[0].replace('_', '-')} is not served by the RC car's process yet: the car drives from "
                     "drive_command or ee_delta_command and publishes odom, imu and state")
    args.cameras = tuple(c for c in args.cameras.split(",") if c)
    if args.backend != "twin" and any(getattr(args, k) for k in TWIN_ONLY):
        parser.error("--cameras, --twin-task, --scripted-episodes and --dynamics render or read the twin: they need "
                     "--backend twin (on the car, cameras are processes of their own: robot_rl.drivers.camera_node)")
    if args.scripted_episodes < 0:
        parser.error(f"--scripted-episodes: expected 0 or more, found {args.scripted_episodes}")
    for key in ("rate", "command_rate", "camera_fps"):
        if not getattr(args, key) > 0:
            parser.error(f"--{key.replace('_', '-')}: expected a positive rate in Hz, found {getattr(args, key)}")
    if args.cells < 1:
        parser.error(f"--cells: expected 1 or more LiPo cells, found {args.cells}")
    return args


def make_backend(args: argparse.Namespace, image_size: tuple[int, int] = (128, 128)):
    from robot_rl.drivers.rc_car.robot import DEFINITION

    return DEFINITION.make_backend(args.backend, port=args.port, task=args.task, seed=args.seed,
                                   dynamics=args.dynamics, command_rate=args.command_rate, image_size=image_size)


def _node_class():
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Imu, JointState
    from std_msgs.msg import Bool, Float32MultiArray, Float64MultiArray
    from std_srvs.srv import SetBool, Trigger

    from robot_rl.drivers.backend import BackendFault
    from robot_rl.drivers.command_arbiter import Level
    from robot_rl.drivers.driver_node import COMMAND_QOS, DIAGNOSTICS_PERIOD, LATCHED_QOS, WARN_EVERY_S
    from robot_rl.drivers.rc_car.odometry import BicycleOdometry
    from robot_rl.drivers.rc_car.safety import CarLimits, CarSafety
    from robot_rl.sim.rc_car.constants import MAX_SPEED, STEER_LIMIT
    from robot_rl.sim.rc_car.spec import ACTION_NAMES, STATE_NAMES
    from robot_rl.sim.vesc.protocol import fault_name

    class CarDriverNode(Node):
        def __init__(self, backend, *, limits: CarLimits | None = None, rate_hz: float = 50.0, cells: int = 3,
                     hardware_id: str = "", node_name: str = "rc_car_driver"):
            super().__init__(node_name)
            self.backend, self.safety = backend, CarSafety(limits)
            self.odometry = BicycleOdometry()
            self.rate_hz, self.cells = float(rate_hz), int(cells)
            self.hardware_id = hardware_id or type(backend).__name__
            self.enabled = False
            self.reading = None
            self._port_lost = False
            self._last_read = None
            self._ticks, self._window = 0, time.monotonic()
            self.odom_pub = self.create_publisher(Odometry, "odom", 10)
            self.imu_pub = self.create_publisher(Imu, "imu", 10)
            self.state_pub = self.create_publisher(Float32MultiArray, "state", 10)
            self.joint_state_pub = self.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
            self.applied_pub = self.create_publisher(JointState, "command_applied", COMMAND_QOS)
            self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", COMMAND_QOS)
            self.ee_applied_pub = self.create_publisher(JointState, "ee_command_applied", COMMAND_QOS)
            self.create_subscription(Float64MultiArray, "drive_command", self._on_command, COMMAND_QOS)
            self.create_subscription(Float64MultiArray, "ee_delta_command", self._on_action, COMMAND_QOS)
            self.create_subscription(Bool, "estop", self._on_estop, LATCHED_QOS)
            self.create_subscription(Bool, "estop", self._on_estop, COMMAND_QOS)
            self._serve(SetBool, "enable_torque", lambda request: self.enable(bool(request.data)))
            self._serve(Trigger, "reset_estop", lambda _: self.safety.reset_estop())
            self._serve(Trigger, "clear_fault", lambda _: self.clear_fault())
            self.bus_timer = self.create_timer(1.0 / self.rate_hz, self._on_bus_tick)
            self.diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD, self.publish_diagnostics)

        def _serve(self, kind, name, action):
            def handle(request, response):
                response.success, response.message = action(request)
                return response

            self.create_service(kind, name, handle)

        # --- commands -----------------------------------------------------------------------
        def enable(self, enabled: bool) -> tuple[bool, str]:
            self.enabled = enabled
            if not enabled:
                self._send_brake()
            return True, "motor enabled" if enabled else "motor disabled: braking"

        def enable_torque(self, enabled: bool = True) -> tuple[bool, str]:
            """The robot layer's name for enabling the actuators (the arms' torque): the motor here."""
            return self.enable(enabled)

        def _on_command(self, msg):
            if len(msg.data) != 2:
                self.get_logger().warning(f"drive_command: expected 2 values (steering rad, speed m/s), found "
                                          f"{len(msg.data)}", throttle_duration_sec=WARN_EVERY_S)
                return
            self._drive("drive_command", float(msg.data[0]), float(msg.data[1]))

        def _on_action(self, msg):
            if len(msg.data) != 2:
                self.get_logger().warning(f"ee_delta_command: expected the car's 2 normalized values {ACTION_NAMES}, "
                                          f"found {len(msg.data)}", throttle_duration_sec=WARN_EVERY_S)
                return
            steering, throttle = (min(max(float(v), -1.0), 1.0) if math.isfinite(v) else float(v) for v in msg.data)
            self._drive("ee_delta_command", steering * STEER_LIMIT, throttle * MAX_SPEED)

        def _drive(self, topic: str, steering: float, speed: float):
            """One command through the safety core; an accepted one is published as applied, in SI units on
            command_applied and as the normalized action on ee_command_applied (what the recorder records)."""
            if not self.enabled:
                self.get_logger().warning(f"{topic} refused: the motor is disabled (call enable_torque)",
                                          throttle_duration_sec=WARN_EVERY_S)
                return
            outcome = self.safety.command(steering, speed, time.monotonic())
            if not outcome.accepted:
                self.get_logger().warning(f"{topic}: {outcome.message}", throttle_duration_sec=WARN_EVERY_S)
                return
            stamp = self.get_clock().now().to_msg()
            applied = JointState(name=["steering", "speed"], position=[outcome.steering, outcome.speed])
            applied.header.stamp = stamp
            self.applied_pub.publish(applied)
            action = JointState(name=list(ACTION_NAMES), position=[outcome.steering / STEER_LIMIT,
                                                                   outcome.speed / MAX_SPEED])
            action.header.stamp = stamp
            self.ee_applied_pub.publish(action)

        def _on_estop(self, msg):
            if msg.data:
                if not self.safety.estopped:
                    self.get_logger().warning("e-stop latched from the estop topic")
                self.safety.estop("estop topic")
                self._send_brake()

        def clear_fault(self) -> tuple[bool, str]:
            if self._port_lost:
                try:
                    self.backend.close()
                    self.backend.connect()
                except BackendFault as error:
                    return False, f"reconnect failed: {error}"
                self._port_lost = False
            try:
                reading = self.backend.read()
            except BackendFault as error:
                self._fault(str(error), lost=True)
                return False, str(error)
            if reading.fault_code:
                return False, f"the VESC still reports {fault_name(reading.fault_code)}"
            self.safety.clear_fault()
            self._last_read = None
            self.publish_diagnostics()
            return True, "fault cleared: send a zero-speed command before driving again"

        # --- the bus ------------------------------------------------------------------------
        def _on_bus_tick(self):
            """Send first, then read: a command waits for the tick only, not for the state poll's wire time
            too (benchmarks/vesc_bench.py); a fault the read finds brakes at once (``_fault``)."""
            self._ticks += 1
            if self._port_lost:
                self.safety.tick(time.monotonic())
                return
            output = self.safety.tick(time.monotonic())
            try:
                if output.drive and self.enabled:
                    self.backend.drive(output.steering, output.speed)
                else:
                    self.backend.brake()
                self.reading = reading = self.backend.read()
            except BackendFault as error:
                self._fault(str(error), lost=True)
                return
            if reading.fault_code and self.safety.fault_message is None:
                self._fault(f"the VESC reports {fault_name(reading.fault_code)} (fault code {reading.fault_code})")
            self._publish_reading(reading)

        def _send_brake(self):
            if not self._port_lost:
                try:
                    self.backend.brake()
                except BackendFault as error:
                    self._fault(str(error), lost=True)

        def _fault(self, message: str, lost: bool = False):
            self._port_lost = self._port_lost or lost
            first = self.safety.fault_message is None
            self.safety.fault(message)
            self._send_brake()
            if first:
                self.get_logger().error(f"fault: {message}; braking, call clear_fault")
                self.publish_diagnostics()

        def _publish_reading(self, reading):
            dt = 0.0 if self._last_read is None else reading.stamp - self._last_read
            self._last_read = reading.stamp
            x, y, yaw = self.odometry.update(reading.speed, reading.steering, dt)
            stamp = self.get_clock().now().to_msg()
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, "odom", "base_link"
            odom.pose.pose.position.x, odom.pose.pose.position.y = x, y
            odom.pose.pose.orientation.z, odom.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
            odom.twist.twist.linear.x = reading.speed
            odom.twist.twist.angular.z = self.odometry.yaw_rate(reading.speed, reading.steering)
            self.odom_pub.publish(odom)
            imu = Imu()
            imu.header.stamp, imu.header.frame_id = stamp, "imu"
            w, qx, qy, qz = (float(v) for v in reading.orientation)
            imu.orientation.w, imu.orientation.x, imu.orientation.y, imu.orientation.z = w, qx, qy, qz
            gx, gy, gz = (float(v) for v in reading.gyro)
            imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = gx, gy, gz
            ax, ay, az = (float(v) for v in reading.accel)
            imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z = ax, ay, az
            self.imu_pub.publish(imu)
            state = reading.state().tolist()
            self.state_pub.publish(Float32MultiArray(data=state))
            joints = JointState(name=list(STATE_NAMES), position=state)
            joints.header.stamp = stamp
            self.joint_state_pub.publish(joints)

        def status(self) -> tuple[int, str, dict]:
            now = time.monotonic()
            rate = self._ticks / max(1e-9, now - self._window)
            self._ticks, self._window = 0, now
            r = self.reading
            values = {**self.safety.report(now), **self.backend.counters(), "motor_enabled": self.enabled,
                      "bus_rate_hz": f"{rate:.1f}", "bus_rate_target_hz": f"{self.rate_hz:.1f}"}
            if r is not None:
                values |= {"battery_voltage": f"{r.voltage:.2f}", "temp_fet_c": f"{r.temp_fet:.1f}",
                           "temp_motor_c": f"{r.temp_motor:.1f}", "vesc_fault_code": r.fault_code}
            if self.safety.fault_message is not None:
                return Level.ERROR, f"fault: {self.safety.fault_message}", values
            if self.safety.estopped:
                return Level.WARN, f"e-stop latched: {self.safety.estop_reason}", values
            if r is not None and r.voltage < LOW_CELL_V * self.cells:
                return Level.WARN, f"low battery: {r.voltage:.2f} V for {self.cells} cells: charge it", values
            if r is not None and (r.temp_fet > HOT_FET_C or r.temp_motor > HOT_MOTOR_C):
                return Level.WARN, f"hot: FET {r.temp_fet:.0f} degC, motor {r.temp_motor:.0f} degC", values
            return Level.OK, "running" if self.enabled else "motor disabled", values

        def publish_diagnostics(self):
            level, message, values = self.status()
            msg = DiagnosticArray()
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.status = [DiagnosticStatus(level=bytes([int(level)]), name=f"{self.get_name()}: driver", message=message,
                                           hardware_id=self.hardware_id,
                                           values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])]
            self.diagnostics_pub.publish(msg)

        def shutdown_backend(self):
            """Stop the timers, brake (best effort: the port may be gone), close."""
            self.bus_timer.cancel()
            self.diagnostics_timer.cancel()
            self._send_brake()
            self.backend.close()

    return CarDriverNode


def make_node(backend, args: argparse.Namespace):
    from robot_rl.drivers.rc_car.robot import DEFINITION

    return _node_class()(backend, **DEFINITION.driver_parts(args.command_rate), rate_hz=args.rate, cells=args.cells, node_name=args.name,
                         hardware_id=f"rc_car:{args.backend}:{args.port if args.backend != 'twin' else 'mujoco'}")


def main(argv=None) -> None:
    """Ctrl-C or SIGTERM, at any point, end the process with status 0 once the motor is braked and the port
    closed (robot_rl.drivers.spinning: a signal never shuts the ROS context down under a running callback)."""
    import signal

    args = parse_args(argv)
    from robot_rl.drivers.network import apply_dds_environment
    apply_dds_environment()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run(args)
    except KeyboardInterrupt:
        pass


def run(args: argparse.Namespace) -> None:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from robot_rl.drivers.backend import BackendFault
    from robot_rl.drivers.spinning import spin_until, stop_on_signals

    policy = None
    if args.policy:  # nothing runs before the learner's first online checkpoint: no stream for a recorder to start on
        from robot_rl.drivers.policy_runner import load_checkpoint_policy
        from robot_rl.learner.actor import wait_until_acting

        wait_until_acting(args.policy)
        policy = load_checkpoint_policy(args.policy)
    backend = make_backend(args, image_size=policy.image_size if policy else (128, 128))
    try:
        backend.connect()
    except BackendFault as err:
        backend.close()
        raise SystemExit(f"rc_car driver: {err}") from None
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    nodes, operator = [], None
    try:
        nodes.append(make_node(backend, args))
        if args.backend == "twin":
            nodes.extend(make_twin_companions(backend, args))
        if args.scripted_episodes:
            from robot_rl.drivers.rc_car.scripted import ScriptedCarOperator

            operator = ScriptedCarOperator(backend, episodes=args.scripted_episodes, seed=args.seed,
                                           rate_hz=args.command_rate, wait_for_recorder=args.wait_for_recorder)
            nodes.append(operator)
        if policy is not None:
            from robot_rl.drivers.policy_node import PolicyNode
            from robot_rl.drivers.policy_runner import twin_observation

            nodes.append(PolicyNode(policy, twin_observation(backend, policy.cameras), rate_hz=args.command_rate,
                                    deterministic=False, poll_checkpoints_s=1.0))
        if args.enable_torque or operator is not None:  # the scripted operator cannot press the enable button
            nodes[0].get_logger().info(nodes[0].enable(True)[1])
        spin_until(nodes, until=(lambda: operator.finished) if operator else (lambda: False))
        if operator is not None:
            nodes[0].get_logger().info(f"scripted episodes (outcome, actions): {operator.outcomes}")
    finally:
        stop_on_signals()
        if nodes:
            nodes[0].shutdown_backend()
        else:
            backend.close()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def make_twin_companions(backend, args: argparse.Namespace) -> list:
    """The nodes that read the twin's state in its process: its cameras, the task node."""
    from robot_rl.drivers.camera_node import twin_camera_node

    nodes = [twin_camera_node(backend, camera, args.camera_fps) for camera in args.cameras]
    if args.twin_task:
        from robot_rl.drivers.twin_task_node import TwinTaskNode

        # Faster than the commands: each recorded row takes the reward of the newest status after its action.
        nodes.append(TwinTaskNode(backend, rate_hz=4 * args.command_rate))
    return nodes


if __name__ == "__main__":
    main()
