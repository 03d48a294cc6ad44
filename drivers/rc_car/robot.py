"""The RC car in the robot layer (robot_rl.drivers.robot): its backends, its safety core and its robot-layer
object, shared by the pure-Python robot and the ROS robot process (robot_rl.drivers.rc_car.node).

    robot = make_robot("rc_car", backend="twin")       # or backend="vesc", port="/dev/ttyACM0"
    robot.connect()                                    # the twin's physics or the VESC; the motor enabled
    obs = robot.observe()                              # state (+ task_state and cameras on the twin)
    applied = robot.act((steering, throttle))          # normalized, through the safety core: what was executed
    robot.disconnect()                                 # brake, close

The arm's Robot puts a joint-position CommandArbiter in front of its backend; the car's is CarSafety
(robot_rl.drivers.rc_car.safety): a bus thread ticks it at ``bus_rate_hz`` (send, then read), so its
watchdog brakes the car when ``act`` stops being called, and a lost VESC brakes and refuses actions.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np

from robot_rl.drivers.backend import BackendFault
from robot_rl.drivers.robot import TWIN, ActionRefused, RobotDefinition
from robot_rl.sim.rc_car import constants as car


def make_backend(backend: str, *, port: str, task: str | None = None, seed: int = 0, dynamics=None,
                 command_rate: float = car.CONTROL_RATE_HZ, image_size: tuple[int, int] = (128, 128)):
    from robot_rl.drivers.rc_car.backends import make_car_backend

    return make_car_backend(backend, port=port, task=task or DEFINITION.default_task, seed=seed, dynamics=dynamics,
                            image_size=image_size)


def driver_parts(command_rate: float) -> dict:
    """The car driver's keywords: its safety limits (the watchdog at 5 command periods, at least 0.25 s)."""
    from robot_rl.drivers.rc_car.safety import CarLimits

    return {"limits": CarLimits(watchdog_timeout=max(0.25, 5.0 / command_rate))}


class CarProprio:
    """The car's 8-D state from ``joint_states`` as its driver publishes it (the state's entries by name)."""

    def __init__(self):
        from robot_rl.sim.rc_car.spec import STATE_NAMES

        self.joint_names = STATE_NAMES

    def __call__(self, names: Sequence[str], positions: Sequence[float], velocities: Sequence[float] = ()) -> np.ndarray:
        """``velocities`` are taken and not used: the car's speeds are entries of its state already."""
        from robot_rl.drivers.proprio import ordered_positions

        return ordered_positions(names, positions, self.joint_names).astype(np.float32)


class CarRobot:
    def __init__(self, backend, spec, *, command_rate: float, cameras: Mapping[str, object] | None = None,
                 bus_rate_hz: float = 50.0):
        from robot_rl.drivers.rc_car.safety import CarSafety

        self.definition, self.backend, self.spec = DEFINITION, backend, spec
        self.command_rate, self.bus_rate_hz = float(command_rate), float(bus_rate_hz)
        self.cameras = dict(cameras or {})
        self.twin = hasattr(backend, "observe")
        self.safety = CarSafety(**driver_parts(self.command_rate))
        self.reading = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bus: threading.Thread | None = None

    def connect(self) -> None:
        self.backend.connect()
        self.reading = self.backend.read()
        for camera in self.cameras.values():
            camera.connect()
        self._stop.clear()
        self._bus = threading.Thread(target=self._run_bus, name="rc_car-bus", daemon=True)
        self._bus.start()

    def observe(self) -> dict[str, np.ndarray]:
        if self.twin:
            obs = self.backend.observe(tuple(self.spec.cameras))
            return {key: obs[key] for key in self.spec.obs_keys}
        from robot_rl.drivers.robot import _at_size

        obs = {"state": self.reading.state()}
        for name, camera in self.spec.cameras.items():
            obs[name] = _at_size(self.cameras[name].read()[0], camera.height, camera.width)
        return obs

    def act(self, action) -> np.ndarray:
        """Send one normalized (steering, throttle) action; returns the action the safety core accepted
        (clipped to the limits). Raises ActionRefused when nothing was accepted (e-stop, fault, NaN, a
        throttle that has not come back through zero after a reset)."""
        action = np.asarray(action, dtype=float)
        if action.shape != (2,):
            raise ActionRefused(f"rc_car: action refused (malformed): expected (steering, throttle), found shape "
                                f"{action.shape}")
        with self._lock:
            outcome = self.safety.command(action[0] * car.STEER_LIMIT, action[1] * car.MAX_SPEED, time.monotonic())
        if not outcome.accepted:
            raise ActionRefused(f"rc_car: action refused ({outcome.reason}): {outcome.message}")
        return np.array([outcome.steering / car.STEER_LIMIT, outcome.speed / car.MAX_SPEED], dtype=np.float32)

    def estop(self, reason: str = "estop") -> None:
        with self._lock:
            self.safety.estop(reason)

    def disconnect(self) -> None:
        self._stop.set()
        if self._bus is not None:
            self._bus.join()
            self._bus = None
        for camera in self.cameras.values():
            camera.disconnect()
        try:
            self.backend.brake()
        except BackendFault:
            pass  # the port is gone: the VESC's own timeout stops the car
        self.backend.close()

    def _run_bus(self) -> None:
        period = 1.0 / self.bus_rate_hz
        lost = False
        while not self._stop.wait(period):
            with self._lock:
                output = self.safety.tick(time.monotonic())
            if lost:
                continue
            try:
                if output.drive:
                    self.backend.drive(output.steering, output.speed)
                else:
                    self.backend.brake()
                self.reading = self.backend.read()
            except BackendFault as error:
                lost = True
                with self._lock:
                    self.safety.fault(str(error))
                continue
            if self.reading.fault_code:
                with self._lock:
                    self.safety.fault(f"the VESC reports fault code {self.reading.fault_code}")


def make_car_robot(backend: str = TWIN, *, task: str | None = None, cameras=(), command_rate: float | None = None,
                   port: str | None = None, seed: int = 0, dynamics=None, camera_devices=None,
                   image_size: tuple[int, int] = (128, 128)) -> CarRobot:
    from robot_rl.sim.specs import embodiment_spec

    rate = command_rate or car.CONTROL_RATE_HZ
    twin = backend == TWIN
    task = task or (DEFINITION.default_task if twin else None)
    spec = embodiment_spec(car.ROBOT_NAME, task if twin else None, tuple(cameras), image_size)
    hardware = make_backend(backend, port=port or DEFINITION.default_port, task=task, seed=seed, dynamics=dynamics,
                            command_rate=rate, image_size=image_size)
    devices = {}
    if not twin and cameras:
        from robot_rl.drivers.camera import OpenCVCamera

        missing = [c for c in cameras if c not in (camera_devices or {})]
        if missing:
            raise ValueError(f"cameras {missing} have no device: give camera_devices={{'{missing[0]}': '/dev/video0'}}")
        height, width = image_size
        devices = {c: OpenCVCamera(camera_devices[c], width=width, height=height) for c in cameras}
    return CarRobot(hardware, spec, command_rate=rate, cameras=devices)


DEFINITION = RobotDefinition(
    name=car.ROBOT_NAME,
    process="robot_rl.drivers.rc_car.node",
    hardware_backends=("vesc",),
    default_port="/dev/ttyACM0",
    make_backend=make_backend,
    driver_parts=driver_parts,
    make_proprio=CarProprio,
    default_task="goal",
    extras={"vesc": "hw"},
    make_robot=make_car_robot,
    # The car's own teleop (a gamepad with a deadman), or its scripted planner on the twin.
    teleop_devices=("scripted", "gamepad", "none"),
    teleop_module="robot_rl.drivers.rc_car.teleop",
)
