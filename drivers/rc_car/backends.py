"""The car's two backends behind one small surface: the MuJoCo twin in this process, or the VESC over serial.

    backend = VescBackend("/dev/ttyACM0")     # or TwinCarBackend(seed=0)
    backend.connect()
    reading = backend.read()                  # CarReading: speed, steering, IMU, battery, temperatures
    backend.drive(steering_rad, speed_mps)    # through robot_rl.drivers.rc_car.safety first
    backend.brake(); backend.close()

A backend raises BackendFault when the hardware is gone (robot_rl.drivers.backend); a VESC fault code is
not an exception but part of the reading (``fault_code``), for the node to act on.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from robot_rl.sim.rc_car import constants as car

BRAKE_CURRENT_A = 10.0  # the brake command's current (our choice: a firm stop, well under a 3S pack's limits)
GRAVITY = 9.80665


@dataclass(frozen=True)
class CarReading:
    speed: float              # m/s, rear axle (ERPM / 4614)
    steering: float           # rad, + = left (on the car: the last servo command mapped back)
    gyro: np.ndarray          # rad/s, car frame
    accel: np.ndarray         # m/s^2, specific force (+9.81 on z at rest)
    orientation: np.ndarray   # quaternion w, x, y, z (the IMU's attitude)
    voltage: float            # V, battery
    temp_fet: float           # degC
    temp_motor: float         # degC
    fault_code: int           # the VESC's (0: none)
    stamp: float              # time.monotonic() of the reading

    def state(self) -> np.ndarray:
        """The spec's 8-D ``state`` (robot_rl.sim.rc_car.spec)."""
        return np.array([self.speed, self.steering, *self.gyro, *self.accel], dtype=np.float32)


def make_car_backend(backend: str, *, port: str, task: str = "goal", seed: int = 0, dynamics=None,
                     image_size=(128, 128)):
    """``twin`` (the MuJoCo car in this process) or ``vesc`` (the VESC on ``port``)."""
    if backend == "twin":
        return TwinCarBackend(task=task, seed=seed, dynamics=dynamics, image_size=image_size)
    if backend == "vesc":
        return VescBackend(port)
    raise ValueError(f"backend={backend!r} is unknown for the RC car: expected twin or vesc")


def servo_to_steering(position: float) -> float:
    angle = (position - car.STEERING_TO_SERVO_OFFSET) / car.STEERING_TO_SERVO_GAIN
    return float(np.clip(angle, -car.STEER_LIMIT, car.STEER_LIMIT))


def steering_to_servo(angle: float) -> float:
    return float(np.clip(car.STEERING_TO_SERVO_GAIN * angle + car.STEERING_TO_SERVO_OFFSET, car.SERVO_MIN, car.SERVO_MAX))


class VescBackend:
    """The car's VESC (robot_rl.drivers.rc_car.vesc.VescSerial)."""

    def __init__(self, port: str, **serial_options):
        from robot_rl.drivers.rc_car.vesc import VescSerial

        self.vesc = VescSerial(port, **serial_options)
        self.port = port
        self._servo = car.STEERING_TO_SERVO_OFFSET

    def connect(self) -> None:
        self.vesc.connect()
        self.brake()

    def read(self) -> CarReading:
        state = self.vesc.poll()
        v, imu = state.values, state.imu
        return CarReading(speed=car.erpm_to_speed(v.erpm), steering=servo_to_steering(self._servo),
                          gyro=np.radians([imu.gyro_x, imu.gyro_y, imu.gyro_z]),
                          accel=np.array([imu.acc_x, imu.acc_y, imu.acc_z]) * GRAVITY,
                          orientation=np.array([imu.q_w, imu.q_x, imu.q_y, imu.q_z]), voltage=v.input_voltage,
                          temp_fet=v.temp_fet, temp_motor=v.temp_motor, fault_code=v.fault_code, stamp=state.stamp)

    def drive(self, steering: float, speed: float) -> None:
        self._servo = steering_to_servo(steering)
        self.vesc.send_drive(speed * car.SPEED_TO_ERPM_GAIN + car.SPEED_TO_ERPM_OFFSET, self._servo)

    def brake(self) -> None:
        self.vesc.send_brake(BRAKE_CURRENT_A)

    def counters(self) -> dict:
        return {"corrupt_frames": self.vesc.corrupt_frames, "missed_replies": self.vesc.missed_replies}

    def close(self) -> None:
        self.vesc.close()


class TwinCarBackend:
    """The car's MuJoCo twin (robot_rl.sim.rc_car.RCCarGoal) stepping at wall-clock pace in a thread of this
    process; drive() sets its speed servo and steering as the VESC would, brake() targets zero speed."""

    def __init__(self, *, task: str = "goal", seed: int = 0, dynamics=None, image_size=(128, 128), cameras=()):
        from robot_rl.sim.registry import make_env

        self.env = make_env(car.ROBOT_NAME, task, dynamics=dynamics, image_size=image_size, cameras=tuple(cameras))
        self.seed = seed
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def connect(self) -> None:
        with self.lock:
            self.env.reset(seed=self.seed)
            self.env.drive(0.0, self.env.steering_target)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rc-car-twin", daemon=True)
        self._thread.start()

    def read(self) -> CarReading:
        with self.lock:
            proprio = self.env.proprio()
            quat = self.env.chassis_quat()
        return CarReading(speed=float(proprio[0]), steering=float(proprio[1]), gyro=proprio[2:5].copy(),
                          accel=proprio[5:8].copy(), orientation=quat, voltage=11.1, temp_fet=30.0, temp_motor=30.0,
                          fault_code=0, stamp=time.monotonic())

    def observe(self, cameras=()) -> dict:
        with self.lock:
            return self.env.observe(tuple(cameras))

    def evaluate(self):
        """The twin task's reward, success and failure now (under the physics lock)."""
        with self.lock:
            return self.env.evaluate()

    def drive(self, steering: float, speed: float) -> None:
        with self.lock:
            self.env.drive(speed, steering)

    def brake(self) -> None:
        with self.lock:
            self.env.drive(0.0, self.env.steering_target)

    def counters(self) -> dict:
        return {}

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.env.close()

    def _run(self) -> None:
        import mujoco

        dt = self.env.model.opt.timestep
        next_time = time.perf_counter()
        while not self._stop.is_set():
            with self.lock:
                mujoco.mj_step(self.env.model, self.env.data)
            next_time += dt
            delay = next_time - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -0.1:
                next_time = time.perf_counter()
