"""The WidowX 250 S servo chain emulated on a pty, backed by its MuJoCo twin stepping in real time.

    with EmulatedWidowX(link_path="/tmp/ttyDXL") as arm:
        port = PortHandler(arm.port)   # then drive it exactly like the real arm

Each of the seven joints is driven by its master servo: with torque on, in a position mode (3, 4, 5),
Goal Position sets the joint's MuJoCo position actuator (clipped to the joint's range), moving there at
Profile Velocity when that is non-zero (the velocity-based profile; acceleration and time-based profiles
are not emulated). In PWM mode (16) the gripper opens for a positive Goal PWM, closes for a negative one.
With torque off, or on a hardware error, the joint's actuator holds the position where torque went off:
the real arm would sag under gravity, which a driver must never rely on anyway, and the twin stays put
for the next torque-on. A shadow servo reports its joint through its mirrored mount (and its Drive Mode);
the joint moves with its master's goal only.

Every physics step (the model's 10 ms) writes Present Position, Velocity, Current (Present Load on the
XL430), PWM, Moving, Moving Status, Position Trajectory and Realtime Tick of every servo.
"""
from __future__ import annotations

import math
import os
import threading
import time

import mujoco
import numpy as np

from robot_rl.sim.dynamixel.bus import ServoBus
from robot_rl.sim.dynamixel.control_table import (
    CURRENT_POSITION_MODE,
    EXTENDED_POSITION_MODE,
    POSITION_MODE,
    PWM_MODE,
    XL430_W250,
    XM430_W350,
    Servo,
)
from robot_rl.sim.twin import asset_path
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.servos import (
    CENTER_TICKS,
    GRIPPER_CLOSED_TICKS,
    GRIPPER_OPEN_TICKS,
    TICKS_PER_REV,
    WIDOWX_SERVOS,
    rad_to_ticks,
    ticks_to_width,
    width_to_ticks,
)

POSITION_MODES = (POSITION_MODE, EXTENDED_POSITION_MODE, CURRENT_POSITION_MODE)
RAD_PER_TICK = 2 * math.pi / TICKS_PER_REV
RPM_PER_VELOCITY_UNIT = 0.229
XM430_NM_PER_AMP = 4.1 / 2.3       # stall torque over stall current at 12 V
XM430_MA_PER_CURRENT_UNIT = 2.69
IN_POSITION_TICKS = 20             # |goal - present| below this counts as arrived
MAX_LAG_S = 0.1                    # further behind wall-clock than this: stop catching up


def make_widowx_servos() -> list[Servo]:
    """The nine servos as the Interbotix configuration leaves them: 1 Mbps, no return delay, shadows
    reversed and following their masters' IDs, position limits at the joint limits."""
    servos = []
    for spec in WIDOWX_SERVOS:
        model = XM430_W350 if spec.model == XM430_W350.name else XL430_W250
        if spec.joint == "gripper":
            low, high = GRIPPER_CLOSED_TICKS, GRIPPER_OPEN_TICKS
        else:
            lower, upper = wx.ARM_LIMITS[wx.ARM_JOINTS.index(spec.joint)]
            low, high = max(0, rad_to_ticks(lower)), min(4095, rad_to_ticks(upper))
        eeprom = {"baud_rate": 3, "return_delay_time": 0, "min_position_limit": low, "max_position_limit": high}
        if spec.shadow_of is not None:
            eeprom |= {"drive_mode": 1, "secondary_id": spec.shadow_of}
        servos.append(Servo(model, spec.id, **eeprom))
    return servos


class _JointDrive:
    """One joint: its master servo commands the actuator; every servo on it reports the joint."""

    def __init__(self, model: mujoco.MjModel, joint: str, mounts: list[tuple[Servo, int]]):
        self.gripper = joint == "gripper"
        mj_joint = model.joint("left_finger" if self.gripper else joint)
        self.qpos, self.qvel = mj_joint.qposadr[0], mj_joint.dofadr[0]
        self.actuator = model.actuator(joint).id
        self.ctrl_low, self.ctrl_high = model.actuator_ctrlrange[self.actuator]
        self.force_max = float(model.actuator_forcerange[self.actuator][1])
        self.mounts = mounts                 # (servo, +1 master / -1 mirrored shadow)
        self.master = mounts[0][0]
        self.share = 1.0 / len(mounts)       # a joint's torque is split between its servos
        self.hold: float | None = None
        self.setpoint: float | None = None

    # Angles are the master shaft's, in rad; the gripper's is the horn angle of the linear width map.
    def angle(self, data: mujoco.MjData) -> float:
        if self.gripper:
            return (width_to_ticks(2 * data.qpos[self.qpos]) - CENTER_TICKS) * RAD_PER_TICK
        return float(data.qpos[self.qpos])

    def angle_rate(self, data: mujoco.MjData) -> float:
        if self.gripper:
            ticks_per_m = (GRIPPER_OPEN_TICKS - GRIPPER_CLOSED_TICKS) / (wx.GRIPPER_MAX_WIDTH - wx.GRIPPER_MIN_WIDTH)
            return 2 * data.qvel[self.qvel] * ticks_per_m * RAD_PER_TICK
        return float(data.qvel[self.qvel])

    def _ctrl(self, angle: float) -> float:
        value = ticks_to_width(CENTER_TICKS + angle / RAD_PER_TICK) / 2 if self.gripper else angle
        return float(np.clip(value, self.ctrl_low, self.ctrl_high))

    @staticmethod
    def _sign(servo: Servo, mount: int) -> int:
        return -mount if servo.get("drive_mode") & 1 else mount

    def _to_ticks(self, servo: Servo, mount: int, angle: float) -> float:
        return CENTER_TICKS + self._sign(servo, mount) * angle / RAD_PER_TICK + servo.get("homing_offset")

    def _goal_angle(self) -> float:
        servo = self.master
        ticks = servo.get("goal_position") - servo.get("homing_offset") - CENTER_TICKS
        return self._sign(servo, 1) * ticks * RAD_PER_TICK

    def command(self, data: mujoco.MjData, dt: float) -> None:
        """The master's registers to the actuator's set-point."""
        servo, angle = self.master, self.angle(data)
        mode = servo.get("operating_mode")
        if not servo.torque_enabled:
            self.hold = angle if self.hold is None else self.hold
            self.setpoint = None
            data.ctrl[self.actuator] = self._ctrl(self.hold)
            return
        self.hold = None
        if self.setpoint is None:
            self.setpoint = angle
        if mode in POSITION_MODES:
            target = self._goal_angle()
        elif mode == PWM_MODE and self.gripper:
            pwm = servo.get("goal_pwm")
            ends = [(t - CENTER_TICKS) * RAD_PER_TICK for t in (GRIPPER_CLOSED_TICKS, GRIPPER_OPEN_TICKS)]
            target = ends[1] if pwm > 0 else ends[0] if pwm < 0 else self.setpoint
        else:
            target = self.setpoint  # velocity and current modes are not emulated: hold
        profile = servo.get("profile_velocity")
        if profile > 0 and mode in POSITION_MODES:
            max_step = profile * RPM_PER_VELOCITY_UNIT * 2 * math.pi / 60 * dt
            target = self.setpoint + float(np.clip(target - self.setpoint, -max_step, max_step))
        self.setpoint = target
        data.ctrl[self.actuator] = self._ctrl(target)

    def report(self, data: mujoco.MjData, tick_ms: int) -> None:
        """The simulated joint into every servo's present registers."""
        angle, rate = self.angle(data), self.angle_rate(data)
        force = float(data.actuator_force[self.actuator]) * self.share
        for servo, mount in self.mounts:
            sign = self._sign(servo, mount)
            present = round(self._to_ticks(servo, mount, angle))
            velocity = round(sign * rate * 60 / (2 * math.pi) / RPM_PER_VELOCITY_UNIT)
            if servo.model is XM430_W350:
                current = sign * force / XM430_NM_PER_AMP * 1000 / XM430_MA_PER_CURRENT_UNIT
            else:  # Present Load, 0.1 % of the stall torque
                current = sign * force / (self.force_max * self.share) * 1000
            servo.set("present_position", present)
            servo.set("present_velocity", velocity)
            servo.set("present_current", round(current))
            servo.set("present_pwm", round(sign * force / self.force_max * 885))
            in_position = abs(servo.get("goal_position") - present) <= IN_POSITION_TICKS
            moving = abs(velocity) > servo.get("moving_threshold") or (servo.torque_enabled and not in_position)
            servo.set("moving", int(moving))
            servo.set("moving_status", int(in_position) | (int(moving) << 1))
            setpoint = self.setpoint if self.setpoint is not None else angle
            servo.set("position_trajectory", round(self._to_ticks(servo, mount, setpoint)))
            servo.set("realtime_tick", tick_ms % 32768)


class WidowXServoTwin:
    """The MuJoCo WidowX stepping at wall-clock pace, reading goals from and writing presents to the servos."""

    def __init__(self, servos: list[Servo], lock: threading.RLock):
        self.servos, self.lock = servos, lock
        self.model = mujoco.MjModel.from_xml_path(asset_path("widowx/scene.xml"))
        self.data = mujoco.MjData(self.model)
        by_id = {s.id: s for s in servos}
        self.drives = []
        for joint in wx.JOINT_NAMES:
            specs = [s for s in WIDOWX_SERVOS if s.joint == joint]
            mounts = [(by_id[s.id], 1 if s.shadow_of is None else -1) for s in specs]
            self.drives.append(_JointDrive(self.model, joint, mounts))
        self._reset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_time = time.perf_counter()

    def _reset(self) -> None:
        model, data = self.model, self.data
        for name, q in zip(wx.ARM_JOINTS, wx.HOME_QPOS):
            data.qpos[model.joint(name).qposadr[0]] = q
            data.ctrl[model.actuator(name).id] = q
        for name in wx.FINGER_JOINTS:
            data.qpos[model.joint(name).qposadr[0]] = wx.FINGER_LIMITS[1]
        data.ctrl[model.actuator("gripper").id] = wx.FINGER_LIMITS[1]
        mujoco.mj_forward(model, data)
        with self.lock:
            for drive in self.drives:
                drive.report(data, 0)
            for servo in self.servos:
                servo.set("goal_position", servo.get("present_position"))

    @property
    def joint_positions(self) -> np.ndarray:
        """The seven joints as the twin has them: six arm angles (rad) and the finger pad distance (m)."""
        with self.lock:
            arm = [self.data.qpos[d.qpos] for d in self.drives[:6]]
            return np.array([*arm, 2 * self.data.qpos[self.drives[6].qpos]])

    def step(self) -> None:
        """One physics step: commands in, mj_step, presents out."""
        dt = self.model.opt.timestep
        with self.lock:
            for drive in self.drives:
                drive.command(self.data, dt)
            mujoco.mj_step(self.model, self.data)
            tick_ms = int((time.perf_counter() - self._start_time) * 1000)
            for drive in self.drives:
                drive.report(self.data, tick_ms)

    def start(self) -> WidowXServoTwin:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="widowx-twin", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        dt = self.model.opt.timestep
        next_time = time.perf_counter()
        while not self._stop.is_set():
            self.step()
            next_time += dt
            delay = next_time - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -MAX_LAG_S:
                next_time = time.perf_counter()


class EmulatedWidowX:
    """The servo bus and its physics together, with the calls a test makes on the hardware."""

    def __init__(self, *, link_path: str | os.PathLike | None = None):
        self.lock = threading.RLock()
        self.servos = make_widowx_servos()
        self.twin = WidowXServoTwin(self.servos, self.lock)
        self.bus = ServoBus(self.servos, link_path=link_path, lock=self.lock)

    @property
    def port(self) -> str:
        """The device path to open: the symlink when one was asked for, else the pty itself."""
        return self.bus.link_path or self.bus.port

    def start(self) -> EmulatedWidowX:
        self.twin.start()
        self.bus.start()
        return self

    def stop(self) -> None:
        self.bus.stop()
        self.twin.stop()

    # --- what a test does to the hardware (EmulatedWidowXProcess forwards these to its child) ----
    def silence(self, servo_id: int) -> None:
        self.bus.silence(servo_id)

    def unsilence(self, servo_id: int) -> None:
        self.bus.unsilence(servo_id)

    def set_overload(self, servo_id: int) -> None:
        self.bus.set_overload(servo_id)

    def unplug(self) -> float:
        """Pull the U2D2: returns the hang-up's time.monotonic()."""
        return self.bus.unplug()

    def replug(self) -> None:
        self.bus.replug()

    def register(self, servo_id: int, name: str) -> int:
        """A control-table register of one servo, by its e-Manual name in snake case."""
        with self.lock:
            return self.bus.servo(servo_id).get(name)

    def set_register(self, servo_id: int, name: str, value: int) -> None:
        """Set a register as if by hand (a servo swapped in with other settings), whatever its access."""
        with self.lock:
            self.bus.servo(servo_id).set(name, value)

    def torque_enabled(self, servo_id: int) -> bool:
        with self.lock:
            return self.bus.servo(servo_id).torque_enabled

    def joint_positions(self) -> np.ndarray:
        return self.twin.joint_positions

    def device(self) -> str:
        """The pty itself (``port`` may be the symlink to it)."""
        return self.bus.port

    def __enter__(self) -> EmulatedWidowX:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
