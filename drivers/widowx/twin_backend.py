"""The WidowX backend that is its MuJoCo twin, in-process: physics steps in a thread paced to wall-clock
time, so the arm moves while nobody reads it, as a real one does.

With ``dynamics`` (a robot_rl.sim.dynamics preset or knobs) the model's masses, friction, damping and
gains change as in the gym twin, and ``action_latency`` delays every write by that many control periods
(``control_period``, the command period), so a "real" stand-in lags as the gym twin's does. Action and
sensor noise act in the gym twin's step and observation, which the driver bypasses: not applied here.

Other code in the process reads the twin through ``observe()``, ``task_state()`` and ``evaluate()``,
which hold ``lock`` (the lock the physics thread holds around each step), so nobody sees a half-stepped
state; code that must change the twin's state (a task reset) holds ``lock`` itself.

Torque off cannot make the twin go limp safely (it would fold onto the table and the next torque-on
would start from there); instead the position actuators hold where torque went off, and write() is
ignored until torque is on again.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from robot_rl.drivers.backend import JointReading
from robot_rl.sim import Evaluation
from robot_rl.sim.widowx import robot as wx


class WidowXTwinBackend:
    joint_names = wx.JOINT_NAMES

    def __init__(self, task: str = "pick_place", seed: int = 0, real_time: bool = True,
                 image_size: tuple[int, int] = (128, 128), dynamics: str | dict | None = None,
                 control_period: float = 0.2):
        from robot_rl.sim import make_env

        self.env = make_env("widowx", task, image_size=image_size, dynamics=dynamics)
        self.action_delay_s = self.env.dynamics.action_latency * control_period
        self._delayed: deque[tuple[float, np.ndarray]] = deque()  # (due time, targets), oldest first
        self.env.reset(seed=seed)
        model = self.env.model
        joints = (*wx.ARM_JOINTS, "left_finger")
        self._qpos = np.array([model.joint(n).qposadr[0] for n in joints])
        self._qvel = np.array([model.joint(n).dofadr[0] for n in joints])
        self._ctrl = np.array([model.actuator(n).id for n in (*wx.ARM_JOINTS, "gripper")])
        self.real_time = real_time
        self.torque = False
        self.lock = threading.Lock()  # held around every physics step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def data(self):
        return self.env.data

    def connect(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="widowx-twin-physics", daemon=True)
            self._thread.start()

    def read(self) -> JointReading:
        with self.lock:
            d = self.env.data
            return JointReading(d.qpos[self._qpos].copy(), d.qvel[self._qvel].copy(),
                                d.actuator_force[self._ctrl].copy(), time.monotonic())

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
                    self.env.data.ctrl[self._ctrl] = targets

    def set_torque(self, enabled: bool) -> None:
        with self.lock:
            if enabled and not self.torque:  # no jump: start from where the joints are
                self.env.data.ctrl[self._ctrl] = self.env.data.qpos[self._qpos]
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

    def clear_fault(self) -> None:
        """The twin has no hardware faults."""

    def step(self, seconds: float) -> None:
        """Advance physics by ``seconds`` now (for tests and the non-real-time mode)."""
        import mujoco  # after robot_rl.sim, which picks MuJoCo's headless GL backend before its first import

        steps = max(1, round(seconds / self.env.model.opt.timestep))
        with self.lock:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:  # delayed writes that are due
                self.env.data.ctrl[self._ctrl] = self._delayed.popleft()[1]
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
