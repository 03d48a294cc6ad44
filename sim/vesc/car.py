"""`EmulatedVesc`: the RC car's VESC on a pty, its firmware's behaviour over the MuJoCo car stepping in real time.

    with EmulatedVesc(link_path="/tmp/ttyVESC") as vesc:
        serial.Serial(vesc.port, 115200)   # then drive it as the real car

What the firmware does (vedderb/bldc comm/commands.c, the behaviour the F1TENTH vesc_driver relies on):
- COMM_SET_RPM sets the speed controller's target (the car's drive: ERPM / 4614 m/s at the wheel),
  COMM_SET_CURRENT_BRAKE brakes (the twin's drive targets zero speed), COMM_SET_SERVO_POS moves the steering
  servo (0..1, through the F1TENTH servo map back to a steering angle), COMM_ALIVE only resets the timeout.
  COMM_SET_DUTY and COMM_SET_CURRENT are answered by nothing and leave the motor released (not emulated).
- no motor command and no COMM_ALIVE for ``timeout_s`` (the app configuration's timeout: 1 s by default,
  ``TIMEOUT_S``; the car's README asks for 100 ms): the motor is released (the twin brakes to a stop: its
  drive is a speed servo).
- a fault code latches, releases the motor and makes it ignore motor commands until ``clear_fault()``
  (the real VESC clears a fault when its cause goes away). An input voltage under ``UNDER_VOLTAGE_V`` raises
  fault 2 (under voltage), as the firmware's l_min_vin does.
- COMM_GET_VALUES and COMM_GET_IMU_DATA answer with the car: ERPM from the rear wheels' mean speed, the
  tachometer integrating it (6 counts an electrical turn), duty and motor current from a 3500 kV 4-pole
  motor (the Traxxas Velineon of F1TENTH's kit; its gearing follows from the ERPM gain and the wheel
  radius), the IMU from the twin's gyro and accelerometer in the firmware's units (deg/s, g) and its attitude.

Faults to inject: ``unplug()``/``replug()`` (the cable), ``set_fault(code)``, ``set_battery(volts)``,
``set_temperatures(fet, motor)``, ``corrupt_replies(n)`` and ``corrupt_commands(n)`` (line noise: one byte
of the next n frames flipped, on the way out or on the way in). Counters: ``stats()``.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque

import mujoco
import numpy as np

from robot_rl.sim.rc_car import constants as car
from robot_rl.sim.rc_car.goal import RCCarGoal
from robot_rl.sim.vesc import protocol as p
from robot_rl.sim.vesc.wire import PtyWire

TIMEOUT_S = 1.0             # app_configuration.timeout_msec's default
UNDER_VOLTAGE_V = 8.0       # mc_configuration.l_min_vin's default
BATTERY_V = 11.1            # a 3S LiPo, nominal
POLE_PAIRS = 2              # 4-pole motor
MOTOR_KV = 3500.0           # rpm per volt
ERPM_PER_VOLT = MOTOR_KV * POLE_PAIRS
MOTOR_NM_PER_AMP = 60.0 / (2 * math.pi * MOTOR_KV)
# Motor turns per wheel turn: the ERPM gain (ERPM per m/s) over pole pairs, over wheel rpm per m/s.
GEAR_RATIO = (car.SPEED_TO_ERPM_GAIN / POLE_PAIRS) / (60.0 / (2 * math.pi * car.WHEEL_RADIUS))
GRAVITY = 9.80665
MAX_LAG_S = 0.1             # further behind wall-clock than this: stop catching up


def servo_to_steering(position: float) -> float:
    """The inverse of the F1TENTH servo map (robot_rl.sim.rc_car.constants), in rad, at the servo's limits."""
    position = min(max(position, car.SERVO_MIN), car.SERVO_MAX)
    angle = (position - car.STEERING_TO_SERVO_OFFSET) / car.STEERING_TO_SERVO_GAIN
    return float(np.clip(angle, -car.STEER_LIMIT, car.STEER_LIMIT))


class EmulatedVesc:
    def __init__(self, *, link_path: str | os.PathLike | None = None, seed: int = 0, baudrate: int | None = 115200,
                 timeout_s: float = TIMEOUT_S):
        self.timeout_s = float(timeout_s)
        self.lock = threading.RLock()
        self.env = RCCarGoal()
        self.env.reset(seed=seed)
        self.wire = PtyWire(link_path=link_path, baudrate=baudrate)
        self.parser = p.FrameParser()
        self.servo = car.STEERING_TO_SERVO_GAIN * self.env.steering_target + car.STEERING_TO_SERVO_OFFSET
        self.target_erpm: float | None = None  # None: released or braking
        self.motor = "released"  # what holds the motor: rpm, brake, released (duty/current), timeout, fault
        self.last_motor_command = "none"  # the last motor command received: rpm, brake, current, duty
        self.voltage, self.temp_fet, self.temp_motor = BATTERY_V, 30.0, 30.0
        self.fault_code = 0
        self.tachometer = self.tachometer_abs = 0.0
        self.last_command = time.monotonic()
        self.counts = {"frames": 0, "commands": 0, "refused": 0, "replies": 0}
        self._corrupt_out = self._corrupt_in = 0
        self._rpm_log: deque[tuple[float, float]] = deque(maxlen=10000)  # (arrival, ERPM) of each COMM_SET_RPM
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> str:
        return self.wire.link_path or self.wire.port

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> EmulatedVesc:
        if self._thread is None:
            self._stop.clear()
            self.last_command = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="vesc-car", daemon=True)
            self._thread.start()
        self.wire.serve(self.handle_bytes)
        return self

    def stop(self) -> None:
        self.wire.stop()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> EmulatedVesc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- faults and peeks (EmulatedVescProcess forwards these) ---------------------------------
    def unplug(self) -> float:
        """Pull the USB cable: returns the hang-up's time.monotonic(). The VESC itself keeps running (and
        times out to a stop after TIMEOUT_S, as the real one does)."""
        return self.wire.unplug()

    def replug(self) -> None:
        with self.lock:
            self.parser.clear()
        self.wire.replug()

    def set_fault(self, code: int) -> None:
        with self.lock:
            self.fault_code = int(code)
            if code:
                self.target_erpm, self.motor = None, "fault"

    def clear_fault(self) -> None:
        with self.lock:
            self.fault_code = 0 if self.voltage >= UNDER_VOLTAGE_V else 2

    def set_battery(self, volts: float) -> None:
        with self.lock:
            self.voltage = float(volts)
            if self.voltage < UNDER_VOLTAGE_V:
                self.set_fault(2)

    def set_temperatures(self, fet: float, motor: float) -> None:
        with self.lock:
            self.temp_fet, self.temp_motor = float(fet), float(motor)

    def corrupt_replies(self, count: int) -> None:
        with self.lock:
            self._corrupt_out += int(count)

    def corrupt_commands(self, count: int) -> None:
        with self.lock:
            self._corrupt_in += int(count)

    def stats(self) -> dict:
        with self.lock:
            return dict(self.counts, corrupt_in=self.parser.corrupt)

    def commands(self) -> dict:
        """What the VESC is doing: target ERPM (None when not in speed control), what holds the motor (``motor``:
        the firmware's timeout included), the last motor command received, servo position, fault code."""
        with self.lock:
            return {"target_erpm": self.target_erpm, "motor": self.motor, "last_motor_command": self.last_motor_command,
                    "servo": self.servo, "fault_code": self.fault_code}

    def rpm_log(self) -> list[tuple[float, float]]:
        """(time.monotonic() when its bytes were read, ERPM) of each COMM_SET_RPM acted on, oldest first."""
        with self.lock:
            return list(self._rpm_log)

    def place(self, x: float, y: float, yaw: float) -> None:
        """Put the car's chassis centre at (x, y) heading ``yaw``, at rest with the wheels straight."""
        with self.lock:
            self.env.place(x, y, yaw)
            self.servo = car.STEERING_TO_SERVO_OFFSET

    def ground_truth(self) -> np.ndarray:
        """(x, y, yaw, forward speed) of the twin's chassis: what odometry should find."""
        with self.lock:
            return np.array([*self.env.pose(), self.env.speed()])

    def wheel_speed(self) -> float:
        with self.lock:
            return float(self.env.proprio()[0])

    def steering(self) -> float:
        with self.lock:
            return float(self.env.proprio()[1])

    # --- the wire -----------------------------------------------------------------------------
    def handle_bytes(self, data: bytes) -> bytes:
        with self.lock:
            if self._corrupt_in and data:
                data = _flip_one(data)
                self._corrupt_in -= 1
            replies = b""
            for payload in self.parser.feed(data):
                self.counts["frames"] += 1
                reply = self._handle(payload)
                if reply is not None:
                    framed = p.frame(reply)
                    if self._corrupt_out:
                        framed = _flip_one(framed)
                        self._corrupt_out -= 1
                    self.counts["replies"] += 1
                    replies += framed
            return replies

    def _handle(self, payload: bytes) -> bytes | None:
        try:
            command = p.parse_command(payload)
        except ValueError:
            self.counts["refused"] += 1
            return None
        if command.id == p.COMM_GET_VALUES:
            return p.encode_values(self._values())
        if command.id == p.COMM_GET_IMU_DATA:
            return p.encode_imu(self._imu(), int(command.value))
        if command.id == p.COMM_ALIVE:
            self.last_command = time.monotonic()
            return None
        if command.id == p.COMM_SET_SERVO_POS:
            self.servo = min(max(command.value, 0.0), 1.0)
            return None
        if command.id in (p.COMM_SET_RPM, p.COMM_SET_CURRENT_BRAKE, p.COMM_SET_DUTY, p.COMM_SET_CURRENT):
            self.counts["commands"] += 1
            self.last_command = time.monotonic()
            self.last_motor_command = {p.COMM_SET_RPM: "rpm", p.COMM_SET_CURRENT_BRAKE: "brake",
                                       p.COMM_SET_CURRENT: "current", p.COMM_SET_DUTY: "duty"}[command.id]
            if self.fault_code:
                self.target_erpm, self.motor = None, "fault"
            elif command.id == p.COMM_SET_RPM:
                self.target_erpm, self.motor = command.value, "rpm"
                self._rpm_log.append((time.monotonic(), command.value))
            else:
                self.target_erpm = None
                self.motor = "brake" if command.id == p.COMM_SET_CURRENT_BRAKE else "released"
            return None
        self.counts["refused"] += 1  # a command this emulation does not know: the real one ignores it too
        return None

    def _values(self) -> p.Values:
        erpm = self.env.proprio()[0] * car.SPEED_TO_ERPM_GAIN + car.SPEED_TO_ERPM_OFFSET
        motor_current = self.env.drive_torque() / GEAR_RATIO / MOTOR_NM_PER_AMP
        duty = float(np.clip(erpm / (ERPM_PER_VOLT * self.voltage), -1.0, 1.0)) if self.voltage > 0 else 0.0
        return p.Values(temp_fet=self.temp_fet, temp_motor=self.temp_motor, motor_current=motor_current,
                        input_current=motor_current * abs(duty), current_q=motor_current, duty=duty, erpm=erpm,
                        input_voltage=self.voltage, tachometer=int(self.tachometer),
                        tachometer_abs=int(self.tachometer_abs), fault_code=self.fault_code)

    def _imu(self) -> p.Imu:
        proprio = self.env.proprio()
        gyro = np.degrees(proprio[2:5])
        acc = proprio[5:8] / GRAVITY
        w, x, y, z = self.env.chassis_quat()
        roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
        pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
        yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        return p.Imu(roll=roll, pitch=pitch, yaw=yaw, acc_x=acc[0], acc_y=acc[1], acc_z=acc[2],
                     gyro_x=gyro[0], gyro_y=gyro[1], gyro_z=gyro[2], mag_x=0.0, mag_y=0.0, mag_z=0.0,
                     q_w=w, q_x=x, q_y=y, q_z=z)

    # --- the physics --------------------------------------------------------------------------
    def step(self) -> None:
        env = self.env
        dt = env.model.opt.timestep
        with self.lock:
            if time.monotonic() - self.last_command > self.timeout_s and self.motor in ("rpm", "brake"):
                self.target_erpm, self.motor = None, "timeout"
            speed = 0.0 if self.target_erpm is None else (self.target_erpm - car.SPEED_TO_ERPM_OFFSET) / car.SPEED_TO_ERPM_GAIN
            env.drive(speed, servo_to_steering(self.servo))
            mujoco.mj_step(env.model, env.data)
            erpm = env.proprio()[0] * car.SPEED_TO_ERPM_GAIN
            counts = erpm / 60.0 * dt * 6
            self.tachometer += counts
            self.tachometer_abs += abs(counts)

    def _run(self) -> None:
        dt = self.env.model.opt.timestep
        next_time = time.perf_counter()
        while not self._stop.is_set():
            self.step()
            next_time += dt
            delay = next_time - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -MAX_LAG_S:
                next_time = time.perf_counter()


def _flip_one(data: bytes) -> bytes:
    """The first frame's command byte changed (never its start byte, so it is still seen as a frame, and its CRC
    is what catches it): line noise on one packet, the first of the bytes read or written together."""
    start = data.find(bytes([p.START_SHORT]))
    index = start + 2 if 0 <= start < len(data) - 2 else len(data) // 2
    return data[:index] + bytes([data[index] ^ 0x5A]) + data[index + 1:]
