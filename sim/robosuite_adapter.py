"""A robosuite environment behind the twins' interface: dict observations from an embodiment spec,
``info["success"]``, seeded resets, and recordable into the store with ``record_episode``.

    env = RobosuiteEnv("Lift", robot="Panda", cameras=("agentview",))

Observations: ``state`` = robosuite's ``robot0_proprio-state``, ``task_state`` = its ``object-state``,
one uint8 image per camera (turned upright: robosuite renders bottom-up). Actions are robosuite's own
(OSC_POSE for the arm: dxyz, drotation, gripper with -1 open and +1 closed), normalized to [-1, 1].
Needs the ``robosuite`` extra.
"""
from __future__ import annotations

import logging

import gymnasium
import numpy as np

from robot_rl.datasets import CameraSpec, EmbodimentSpec, KeySpec
from robot_rl.sim.expert import ScriptedExpert

INSTRUCTIONS = {"Lift": "lift the cube", "Stack": "stack the red cube on the green cube",
                "PickPlaceCan": "put the can in its bin", "Door": "open the door"}


def _import_robosuite():
    # robosuite logs a page of warnings about macros, humanoid IK and controller parts at import and
    # make(); a filter on its logger survives the level robosuite sets on it.
    logging.getLogger("robosuite_logs").addFilter(lambda record: record.levelno >= logging.ERROR)
    try:
        import robosuite
        from robosuite.controllers import load_composite_controller_config
    except ImportError as err:
        raise ImportError(f"the robosuite adapter needs the `robosuite` extra: pip install "
                          f"'robot-rl[robosuite]' ({err})") from err
    return robosuite, load_composite_controller_config


class RobosuiteEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, env_name: str = "Lift", *, robot: str = "Panda", cameras: tuple[str, ...] = (),
                 image_size: tuple[int, int] = (128, 128), control_rate_hz: float = 20.0,
                 reward_type: str = "dense", max_steps: int = 200):
        robosuite, load_controller = _import_robosuite()
        self.env_name, self.cameras = env_name, tuple(cameras)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.instruction = INSTRUCTIONS.get(env_name, env_name)
        self.max_steps = max_steps
        self.rs = robosuite.make(
            env_name, robots=robot, controller_configs=load_controller(controller="BASIC", robot=robot),
            has_renderer=False, has_offscreen_renderer=bool(cameras), use_camera_obs=bool(cameras),
            camera_names=list(cameras) or "agentview", camera_heights=self.image_size[0],
            camera_widths=self.image_size[1], control_freq=control_rate_hz,
            reward_shaping=reward_type == "dense", horizon=max_steps, ignore_done=True)
        first = self.rs.reset()
        low, _ = self.rs.action_spec
        self.embodiment = EmbodimentSpec(
            name=f"robosuite_{robot.lower()}", control_rate_hz=control_rate_hz,
            action=KeySpec(low.shape, "float32", "normalized", -1.0, 1.0,
                           "robosuite OSC_POSE: dxyz, drotation (axis-angle), gripper (-1 open, +1 closed)"),
            state={"state": KeySpec(first["robot0_proprio-state"].shape, "float32", "mixed",
                                    description="robosuite robot0_proprio-state"),
                   "task_state": KeySpec(first["object-state"].shape, "float32", "mixed",
                                         description="robosuite object-state")},
            cameras={name: CameraSpec(*self.image_size) for name in self.cameras})
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, low.shape, np.float32)
        self.observation_space = gymnasium.spaces.Dict({
            "state": gymnasium.spaces.Box(-np.inf, np.inf, first["robot0_proprio-state"].shape, np.float32),
            "task_state": gymnasium.spaces.Box(-np.inf, np.inf, first["object-state"].shape, np.float32),
            **{name: gymnasium.spaces.Box(0, 255, (*self.image_size, 3), np.uint8) for name in self.cameras}})
        self.steps = 0
        self._last = first

    @property
    def time(self) -> float:
        return float(self.rs.sim.data.time)

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:  # robosuite draws placements and joint noise from env.rng
            self.rs.rng = np.random.default_rng(seed)
            if getattr(self.rs, "placement_initializer", None) is not None:
                self.rs.placement_initializer.rng = self.rs.rng
        self._last = self.rs.reset()
        self.steps = 0
        return self._observe(self._last), {"success": False}

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        self._last, reward, _, _ = self.rs.step(action)
        self.steps += 1
        success = bool(self.rs._check_success())
        return self._observe(self._last), float(reward), success, self.steps >= self.max_steps and not success, \
            {"success": success}

    def render(self):
        return self._observe(self._last)[self.cameras[0]] if self.cameras else None

    def close(self):
        self.rs.close()

    def _observe(self, raw: dict) -> dict[str, np.ndarray]:
        obs = {"state": raw["robot0_proprio-state"].astype(np.float32),
               "task_state": raw["object-state"].astype(np.float32)}
        for name in self.cameras:
            obs[name] = np.ascontiguousarray(raw[f"{name}_image"][::-1])
        return obs


class RobosuiteLiftExpert(ScriptedExpert):
    """Above the cube, down, close, up: a proportional controller on robosuite's OSC deltas."""

    GAIN = 10.0  # OSC_POSE scales [-1, 1] to 5 cm a step; 10/m saturates beyond 10 cm of error
    phase, closed_steps = "above", 0

    def reset(self) -> None:
        self.phase, self.closed_steps = "above", 0

    def plan(self) -> np.ndarray:
        raw = self.env._last
        to_cube = raw["cube_pos"] - raw["robot0_eef_pos"]
        action = np.zeros(7)
        if self.phase == "above":
            action[:3] = self.GAIN * (to_cube + [0, 0, 0.05])
            action[6] = -1
            if np.linalg.norm(to_cube[:2]) < 0.01:
                self.phase = "down"
        elif self.phase == "down":
            action[:3] = self.GAIN * (to_cube + [0, 0, 0.0])
            action[6] = -1
            if abs(to_cube[2]) < 0.01:
                self.phase = "grasp"
        elif self.phase == "grasp":
            action[6] = 1
            self.closed_steps += 1
            if self.closed_steps > 5:
                self.phase = "lift"
        else:
            action[2], action[6] = 1.0, 1
        return np.clip(action, -1, 1)


EXPERTS = {"Lift": RobosuiteLiftExpert}  # robosuite tasks `robot-rl collect robot=robosuite` can record
