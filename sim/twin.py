"""The base of every MuJoCo twin task: a gymnasium environment over one MJCF scene.

A subclass names its scene and embodiment, and fills in five hooks: ``_reset_task`` (randomize the
initial state), ``_apply_action`` (turn a normalized [-1, 1] action into actuator commands),
``_proprio`` / ``_task_state`` (observations), and ``_evaluate`` (reward, success, failure).
This class owns everything common: seeding, dynamics knobs, action latency and noise, sensor noise,
physics stepping at the control rate, cameras rendered offscreen, the step limit. An episode
terminates on failure and, unless ``terminate_on_success=False``, on success (as in SERL's tasks),
so a sparse reward is 1 exactly on the last step of a successful episode.

Observations are dicts whose keys and shapes are the embodiment spec's: ``state`` (proprioception),
``task_state`` (object and goal positions, a twin-only privileged key for state-based learning), and
one uint8 H x W x 3 image per requested camera.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from importlib import resources
from typing import ClassVar

import gymnasium
import mujoco
import numpy as np

from robot_rl.datasets import EmbodimentSpec, KeySpec
from robot_rl.sim.dynamics import Dynamics, NominalModel
from robot_rl.sim.specs import embodiment_spec, task_facts

REWARD_TYPES = ("dense", "sparse")


class classproperty:  # noqa: N801 - reads like the class attribute it replaces
    """A read-only attribute computed from the class, for the class and its instances alike."""

    def __init__(self, getter):
        self.getter = getter

    def __get__(self, instance, owner):
        return self.getter(owner)


def asset_path(relative: str) -> str:
    """Absolute path of a file under ``sim/assets`` (shipped inside the package)."""
    return str(resources.files("robot_rl.sim") / "assets" / relative)


@dataclass(frozen=True)
class Evaluation:
    reward: float
    success: bool
    failure: bool = False  # ends the episode as terminated (a collision, a dropped object)


class TwinEnv(gymnasium.Env, ABC):
    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

    scene: ClassVar[str]              # MJCF file under sim/assets
    robot: ClassVar[str]              # "widowx" | "franka" | "rc_car": its spec is robot_rl.sim.<robot>.spec
    task: ClassVar[str]               # the task's name in that spec's TASKS
    control_rate_hz: ClassVar[float]
    action_dim: ClassVar[int]
    camera_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, reward_type: str = "dense", cameras: tuple[str, ...] | list[str] = (),
                 image_size: tuple[int, int] = (128, 128), dynamics: Dynamics | str | dict | None = None,
                 max_steps: int | None = None, terminate_on_success: bool = True,
                 render_mode: str | None = None):
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type={reward_type!r}: expected one of {REWARD_TYPES}")
        unknown = [c for c in cameras if c not in self.camera_names]
        if unknown:
            raise ValueError(f"{type(self).__name__} has no camera {unknown}: expected some of {self.camera_names}")
        self.reward_type = reward_type
        self.cameras = tuple(cameras)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.dynamics = Dynamics.resolve(dynamics)
        self.max_steps = int(max_steps or self.max_steps_default)
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode

        self.model = mujoco.MjModel.from_xml_path(asset_path(self.scene))
        self.data = mujoco.MjData(self.model)
        self.nominal = NominalModel(self.model)
        self.n_substeps = max(1, round(1.0 / (self.control_rate_hz * self.model.opt.timestep)))
        self._renderer: mujoco.Renderer | None = None
        self._pending: deque[np.ndarray] = deque()
        self.steps = 0

        self.embodiment = self.embodiment_spec(self.cameras, self.image_size)
        self.observation_space = gymnasium.spaces.Dict({
            key: _box(spec) for key, spec in self.embodiment.keys().items()
            if key in self.embodiment.obs_keys})
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)

    # --- the embodiment ----------------------------------------------------------------------
    @classmethod
    def embodiment_spec(cls, cameras=(), image_size=(128, 128)) -> EmbodimentSpec:
        """The spec shared with the store and the drivers (robot_rl.sim.specs): state, task_state, cameras,
        the action."""
        return embodiment_spec(cls.robot, cls.task, cameras, image_size)

    @classproperty
    def instruction(cls) -> str:
        """The language instruction recorded with each episode."""
        return task_facts(cls.robot, cls.task).instruction

    @classproperty
    def max_steps_default(cls) -> int:
        return task_facts(cls.robot, cls.task).max_steps

    # --- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.nominal.apply(self.model, self.dynamics, self.np_random)
        self._reset_task(self.np_random)
        mujoco.mj_forward(self.model, self.data)
        self._pending = deque(np.zeros(self.action_dim, np.float32) for _ in range(self.dynamics.action_latency))
        self.steps = 0
        return self._observe(), {"success": False}

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (self.action_dim,):
            raise ValueError(f"action: expected shape ({self.action_dim},), found {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action has NaN or inf: {action}")
        if self.dynamics.action_noise > 0:
            action = action + self.np_random.normal(0.0, self.dynamics.action_noise, action.shape)
        self._pending.append(np.clip(action, -1.0, 1.0).astype(np.float32))
        self._apply_action(self._pending.popleft())
        self._simulate()
        self.steps += 1
        result = self._evaluate(sparse=self.reward_type == "sparse")
        terminated = result.failure or (result.success and self.terminate_on_success)
        truncated = self.steps >= self.max_steps and not terminated
        info = {"success": bool(result.success), "failure": bool(result.failure)}
        return self._observe(), float(result.reward), bool(terminated), bool(truncated), info

    def render(self):
        name = self.cameras[0] if self.cameras else self.camera_names[0]
        return self._render(name)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # --- the present state, without stepping ---------------------------------------------------
    def observe(self, cameras: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The observation of the present state: ``state``, ``task_state`` and the cameras rendered
        (``cameras`` defaults to the env's own; sensor noise as in step()). Does not advance physics."""
        return self._observe(cameras)

    def task_state(self) -> np.ndarray:
        """The privileged ``task_state`` of the present state (no rendering)."""
        return self._task_state().astype(np.float32)

    def evaluate(self) -> Evaluation:
        """Reward (of the env's reward type), success and failure of the present state; no side effects."""
        return self._evaluate(sparse=self.reward_type == "sparse")

    # --- hooks for the tasks -------------------------------------------------------------------
    @abstractmethod
    def _reset_task(self, rng: np.random.Generator) -> None:
        """Randomize the initial state (after mj_resetData; mj_forward follows)."""

    @abstractmethod
    def _apply_action(self, action: np.ndarray) -> None:
        """Turn a normalized [-1, 1] action into actuator commands."""

    @abstractmethod
    def _proprio(self) -> np.ndarray:
        """The ``state`` observation."""

    @abstractmethod
    def _task_state(self) -> np.ndarray:
        """The ``task_state`` observation."""

    @abstractmethod
    def _evaluate(self, sparse: bool) -> Evaluation:
        """Reward for the last step, success, and failure (which terminates)."""

    def _simulate(self) -> None:
        """Advance one control period. Override to run a controller between physics steps."""
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)

    # --- helpers -------------------------------------------------------------------------------
    @property
    def time(self) -> float:
        return float(self.data.time)

    def _observe(self, cameras: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        state = self._proprio().astype(np.float32)
        if self.dynamics.sensor_noise > 0:
            state = state + self.np_random.normal(0.0, self.dynamics.sensor_noise, state.shape).astype(np.float32)
        obs = {"state": state, "task_state": self.task_state()}
        for name in self.cameras if cameras is None else cameras:
            obs[name] = self._render(name)
        return obs

    def _render(self, camera: str) -> np.ndarray:
        if self._renderer is None:
            height, width = self.image_size
            self._renderer = mujoco.Renderer(self.model, height, width)
        self._renderer.update_scene(self.data, camera)
        return self._renderer.render()

    def _site_pos(self, name: str) -> np.ndarray:
        return self.data.site(name).xpos.copy()

    def _body_pos(self, name: str) -> np.ndarray:
        return self.data.body(name).xpos.copy()


def _box(spec: KeySpec) -> gymnasium.spaces.Box:
    if spec.dtype == "uint8":
        return gymnasium.spaces.Box(0, 255, spec.shape, np.uint8)
    low = -np.inf if spec.low is None else spec.low
    high = np.inf if spec.high is None else spec.high
    return gymnasium.spaces.Box(np.broadcast_to(np.asarray(low, np.float32), spec.shape),
                                np.broadcast_to(np.asarray(high, np.float32), spec.shape),
                                spec.shape, np.dtype(spec.dtype))

