"""The robot layer: one small surface per robot, the same on its twin and on its hardware, without ROS.

    robot = make_robot("widowx", backend="twin", task="reach", cameras=("front",))
    robot.connect()               # open the bus (or start the twin's physics), torque on
    obs = robot.observe()         # the spec's keys: state (+ task_state and cameras on the twin)
    applied = robot.act(action)   # a normalized action through the safety filter: what was executed
    robot.disconnect()            # torque off, close

A :class:`Robot` is a Backend (joint I/O: the twin or the hardware) behind a CommandArbiter (safety filter,
e-stop, faults, the end-effector controller), its embodiment spec and the proprioception its ``state``
key holds. A bus thread ticks the arbiter at ``bus_rate_hz``, so the command watchdog holds the arm when
``act`` stops being called, as in the ROS driver node, which is an adapter over the same parts.

Each robot is one module, ``robot_rl.drivers.<robot>.robot``, with a :class:`RobotDefinition` named
``DEFINITION``; :data:`ROBOTS` lists those modules, and everything else (``robot-rl bringup``, the launch
graphs, the hardware observation from topics) looks robots up here. A robot process
(``RobotDefinition.process``) takes the same options for every robot: ``--backend``, ``--command-rate``,
``--enable-torque``, ``--port`` on hardware, and on the twin ``--task``, ``--seed``, ``--cameras``,
``--camera-fps``, ``--dynamics``, ``--twin-task``, ``--scripted-episodes``, ``--wait-for-recorder`` and
``--policy``.
"""
from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from robot_rl.datasets import EmbodimentSpec

ROBOTS = {"widowx": "robot_rl.drivers.widowx.robot", "franka": "robot_rl.drivers.franka.robot",
          "rc_car": "robot_rl.drivers.rc_car.robot"}
TWIN = "twin"


@dataclass(frozen=True)
class RobotDefinition:
    name: str
    process: str                       # its ROS 2 robot process: python -m <process> --backend ...
    hardware_backends: tuple[str, ...]  # the backends besides the twin, e.g. ("dynamixel",)
    default_port: str                  # the hardware's serial port or address
    make_backend: Callable[..., object]  # (backend, *, port, task, seed, dynamics, command_rate) -> Backend
    driver_parts: Callable[[float], dict]  # command rate -> CommandArbiter keywords (safety, home, ...)
    make_proprio: Callable[[], Callable]   # -> (joint names, positions) -> the spec's ``state``
    default_task: str                  # the twin task a job runs when given none (task: null in the configs)
    extras: Mapping[str, str] = field(default_factory=dict)  # backend -> the pip extra its SDK needs
    # A robot whose driver is not a joint-position CommandArbiter (the RC car) builds its own robot-layer
    # object with the same surface (connect, observe, act, estop, disconnect): make_robot's keywords.
    make_robot: Callable[..., object] | None = None
    # The teleop devices that can drive it in teleop_collect (robot_rl.launch.graphs); None: every one. Its
    # teleop process: python -m <teleop_module> --device ... (the arms' 7-D deltas by default).
    teleop_devices: tuple[str, ...] | None = None
    teleop_module: str = "robot_rl.drivers.teleop"

    @property
    def backends(self) -> tuple[str, ...]:
        return (TWIN, *self.hardware_backends)

    def check_backend(self, backend: str) -> None:
        if backend not in self.backends:
            raise ValueError(f"backend={backend!r} is unknown for robot {self.name!r}: "
                             f"expected one of {', '.join(self.backends)}")


def default_task(robot: str) -> str:
    """The twin task of ``robot`` that a job runs when given none (every verb's task: null)."""
    return robot_definition(robot).default_task


def robot_definition(robot: str) -> RobotDefinition:
    if robot not in ROBOTS:
        raise ValueError(f"robot={robot!r} has no driver: expected one of {', '.join(ROBOTS)} "
                         f"(add a module robot_rl.drivers.<robot>.robot and list it in robot_rl.drivers.robot.ROBOTS)")
    return importlib.import_module(ROBOTS[robot]).DEFINITION


class ActionRefused(RuntimeError):
    """The arbiter refused an action (torque off, a fault, NaN, a malformed action); nothing was written."""


class Robot:
    def __init__(self, definition: RobotDefinition, backend, spec: EmbodimentSpec, *, command_rate: float,
                 cameras: Mapping[str, object] | None = None, bus_rate_hz: float = 50.0):
        self.definition, self.backend, self.spec = definition, backend, spec
        self.command_rate, self.bus_rate_hz = float(command_rate), float(bus_rate_hz)
        self.cameras = dict(cameras or {})  # hardware cameras (robot_rl.drivers.camera.Camera) by spec name
        self.twin = hasattr(backend, "observe")
        self.arbiter = None
        self._proprio = None if self.twin else definition.make_proprio()
        self._lock = threading.Lock()  # the arbiter is not thread-safe: the bus thread and act() share it
        self._stop = threading.Event()
        self._bus: threading.Thread | None = None
        self._reading = None

    def connect(self) -> None:
        from robot_rl.drivers.command_arbiter import CommandArbiter

        self.backend.connect()
        self.arbiter = CommandArbiter(self.backend, **self.definition.driver_parts(self.command_rate))
        ok, message = self.arbiter.enable_torque(True)
        if not ok:
            self.arbiter.shutdown()
            raise ActionRefused(f"{self.definition.name}: torque on failed: {message}")
        for camera in self.cameras.values():
            camera.connect()
        self._stop.clear()
        self._bus = threading.Thread(target=self._run_bus, name=f"{self.definition.name}-bus", daemon=True)
        self._bus.start()

    def observe(self) -> dict[str, np.ndarray]:
        """The spec's observation keys now (a locked snapshot on the twin)."""
        if self.twin:
            obs = self.backend.observe(tuple(self.spec.cameras))
            return {key: obs[key] for key in self.spec.obs_keys}
        with self._lock:
            reading = self._reading or self.backend.read()
        obs = {"state": self._proprio(self.backend.joint_names, reading.position, reading.velocity)}
        for name, camera in self.spec.cameras.items():
            obs[name] = _at_size(self.cameras[name].read()[0], camera.height, camera.width)
        return obs

    def act(self, action) -> np.ndarray:
        """Send one normalized action; returns the action actually executed (clipped or held by the safety
        filter: zeros with the held gripper under an e-stop). Raises ActionRefused when nothing was written."""
        from robot_rl.drivers.command_arbiter import Refusal

        with self._lock:
            outcome = self.arbiter.ee_delta(np.asarray(action, dtype=float))
        if isinstance(outcome, Refusal):
            raise ActionRefused(f"{self.definition.name}: action refused ({outcome.reason}): {outcome.message}")
        return outcome.ee_action.astype(np.float32)

    def estop(self, reason: str = "estop") -> None:
        with self._lock:
            self.arbiter.estop(reason)

    def disconnect(self) -> None:
        self._stop.set()
        if self._bus is not None:
            self._bus.join()
            self._bus = None
        for camera in self.cameras.values():
            camera.disconnect()
        if self.arbiter is not None:
            with self._lock:
                self.arbiter.shutdown()  # torque off, close the backend
        else:
            self.backend.close()

    def _run_bus(self) -> None:
        period = 1.0 / self.bus_rate_hz
        while not self._stop.wait(period):
            with self._lock:
                self._reading = self.arbiter.tick().reading or self._reading


def make_robot(robot: str, backend: str = TWIN, *, task: str | None = None, cameras=(), command_rate: float | None = None,
               port: str | None = None, seed: int = 0, dynamics=None, camera_devices: Mapping[str, object] | None = None,
               image_size: tuple[int, int] = (128, 128)) -> Robot:
    """A robot by name on ``backend``: on the twin, ``task`` picks its scene (and adds ``task_state``); on
    hardware, ``camera_devices`` maps each camera to an OpenCV device."""
    from robot_rl.sim.specs import embodiment_spec, robot_spec_module

    definition = robot_definition(robot)
    definition.check_backend(backend)
    if definition.make_robot is not None:
        return definition.make_robot(backend, task=task, cameras=cameras, command_rate=command_rate, port=port,
                                     seed=seed, dynamics=dynamics, camera_devices=camera_devices, image_size=image_size)
    rate = command_rate or robot_spec_module(robot).CONTROL_RATE_HZ
    twin = backend == TWIN
    task = task or (definition.default_task if twin else None)
    spec = embodiment_spec(robot, task if twin else None, tuple(cameras), image_size)
    hardware = definition.make_backend(backend, port=port or definition.default_port, task=task, seed=seed,
                                       dynamics=dynamics, command_rate=rate, image_size=image_size)
    devices = {}
    if not twin:
        from robot_rl.drivers.camera import OpenCVCamera

        missing = [c for c in cameras if c not in (camera_devices or {})]
        if missing:
            raise ValueError(f"cameras {missing} have no device: give camera_devices={{'{missing[0]}': '/dev/video0'}}")
        height, width = image_size
        devices = {c: OpenCVCamera(camera_devices[c], width=width, height=height) for c in cameras}
    return Robot(definition, hardware, spec, command_rate=rate, cameras=devices)


def _at_size(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """A camera frame at the spec's size (cameras deliver what their driver negotiated)."""
    if frame.shape[:2] == (height, width):
        return frame
    import cv2

    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
