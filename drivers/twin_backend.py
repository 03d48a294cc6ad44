"""A robot's MuJoCo twin as a driver Backend, in-process: physics steps in a thread paced to wall-clock
time, so the arm moves while nobody reads it, as a real one does. Each robot's twin backend
(robot_rl.drivers.<robot>.twin_backend) fills in how joint targets reach its actuators.

With ``dynamics`` (a robot_rl.sim.dynamics preset or knobs) the model's masses, friction, damping and
gains change as in the gym twin, and ``action_latency`` delays every write by that many control periods
(``control_period``, the command period), so a "real" stand-in lags as the gym twin's does. Action and
sensor noise act in the gym twin's step and observation, which the driver bypasses: not applied here.

Other code in the process reads the twin through ``observe()``, ``task_state()`` and ``evaluate()``,
which hold ``lock`` (the lock the physics thread holds around each step), so nobody sees a half-stepped
state; code that must change the twin's state (a task reset) holds ``lock`` itself.

Torque off cannot make the twin go limp safely (it would fold onto the table and the next torque-on
would start from there); instead the actuators hold where torque went off, and write() is ignored until
torque is on again.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque

import numpy as np

from robot_rl.drivers.backend import JointReading
from robot_rl.sim import Evaluation


class TwinBackend(ABC):
    joint_names: tuple[str, ...]
    robot: str  # the twin's robot name for robot_rl.sim.make_env

    def __init__(self, task: str, seed: int = 0, real_time: bool = True, image_size: tuple[int, int] = (128, 128),
                 dynamics: str | dict | None = None, control_period: float = 0.2):
        from robot_rl.sim import make_env

        self.env = make_env(self.robot, task, image_size=image_size, dynamics=dynamics)
        self.action_delay_s = self.env.dynamics.action_latency * control_period
        self._delayed: deque[tuple[float, np.ndarray]] = deque()  # (due time, targets), oldest first
        self.env.reset(seed=seed)
        self.real_time = real_time
        self.torque = False
        self.lock = threading.Lock()  # held around every physics step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what each robot fills in (called with ``lock`` held) --------------------------------------
    @abstractmethod
    def _reading(self) -> JointReading: ...

    @abstractmethod
    def _command(self, targets: np.ndarray) -> None:
        """Send joint targets to the twin's actuators."""

    @abstractmethod
    def _hold_here(self) -> None:
        """Command the actuators to where the joints are now (torque on: no jump)."""

    # --- the Backend -------------------------------------------------------------------------------
    @property
    def data(self):
        return self.env.data

    def connect(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"{self.robot}-twin-physics", daemon=True)
            self._thread.start()

    def read(self) -> JointReading:
        with self.lock:
            return self._reading()

    def write(self, targets: np.ndarray) -> None:
        targets = np.asarray(targets, dtype=float)
        if targets.shape != (len(self.joint_names),):
            raise ValueError(f"targets: expected {len(self.joint_names)} values ({', '.join(self.joint_names)}), "
                             f"found shape {targets.shape}")
        if self.torque:
            with self.lock:
                if self.action_delay_s > 0:
                    self._delayed.append((time.monotonic() + self.action_delay_s, targets))
                else:
                    self._command(targets)

    def set_torque(self, enabled: bool) -> None:
        with self.lock:
            if enabled and not self.torque:  # no jump: start from where the joints are
                self._hold_here()
            self._delayed.clear()
            self.torque = enabled

    def observe(self, cameras: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """A snapshot of the twin's observation (state, task_state, the named cameras rendered)."""
        with self.lock:
            return self.env.observe(tuple(cameras))

    def task_state(self) -> np.ndarray:
        with self.lock:
            return self.env.task_state()

    def evaluate(self) -> Evaluation:
        """The task's reward, success and failure for the present state (no side effects)."""
        with self.lock:
            return self.env.evaluate()

    def clear_fault(self) -> None:  # noqa: B027 - the twin has no hardware faults: nothing to recover
        """The twin has no hardware faults."""

    def step(self, seconds: float) -> None:
        """Advance physics by ``seconds`` now (for tests and the non-real-time mode)."""
        import mujoco  # after robot_rl.sim, which picks MuJoCo's headless GL backend before its first import

        steps = max(1, round(seconds / self.env.model.opt.timestep))
        with self.lock:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:  # delayed writes that are due
                self._command(self._delayed.popleft()[1])
            mujoco.mj_step(self.env.model, self.env.data, nstep=steps)

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.env.close()

    def _run(self) -> None:
        dt = self.env.model.opt.timestep
        next_time = time.perf_counter()
        while not self._stop.is_set():
            if not self.real_time:
                time.sleep(0.01)
                continue
            self.step(dt)
            next_time += dt
            delay = next_time - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.1:  # fell behind (a loaded machine): do not try to catch up in a burst
                next_time = time.perf_counter()
