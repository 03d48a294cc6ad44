"""Every twin task by (robot, task) name, its gymnasium id, and its scripted expert.

    env = make_env("widowx", "pick_place", cameras=("front",))
    expert = make_expert(env, noise=0.1, seed=0)

``gymnasium.make("robot_rl/WidowXPickPlace-v0")`` works too once this module is imported; it
adds gymnasium's checking wrappers, which ``make_env`` leaves out for speed.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import gymnasium

from robot_rl.sim.expert import ScriptedExpert
from robot_rl.sim.twin import TwinEnv


@dataclass(frozen=True)
class TaskEntry:
    env: str      # "module:Class"
    expert: str   # "module:Class"

    @property
    def gym_id(self) -> str:
        return f"robot_rl/{self.env.split(':')[1]}-v0"


TASKS: dict[str, dict[str, TaskEntry]] = {
    "widowx": {
        "reach": TaskEntry("robot_rl.sim.widowx:WidowXReach", "robot_rl.sim.widowx:WidowXReachExpert"),
        "pick_place": TaskEntry("robot_rl.sim.widowx:WidowXPickPlace", "robot_rl.sim.widowx:WidowXPickPlaceExpert"),
    },
    "franka": {
        "lift": TaskEntry("robot_rl.sim.franka:FrankaLift", "robot_rl.sim.franka:FrankaLiftExpert"),
        "peg_insert": TaskEntry("robot_rl.sim.franka:FrankaPegInsert", "robot_rl.sim.franka:FrankaPegInsertExpert"),
    },
    "rc_car": {
        "goal": TaskEntry("robot_rl.sim.rc_car:RCCarGoal", "robot_rl.sim.rc_car:RCCarGoalExpert"),
    },
}


def task_entry(robot: str, task: str) -> TaskEntry:
    if robot not in TASKS:
        raise ValueError(f"robot={robot!r} is unknown: expected one of {sorted(TASKS)}")
    if task not in TASKS[robot]:
        raise ValueError(f"task={task!r} is unknown for robot {robot!r}: expected one of {sorted(TASKS[robot])}")
    return TASKS[robot][task]


def _load(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def env_class(robot: str, task: str) -> type[TwinEnv]:
    return _load(task_entry(robot, task).env)


def make_env(robot: str, task: str, **kwargs) -> TwinEnv:
    return env_class(robot, task)(**kwargs)


def make_expert(env: TwinEnv, noise: float = 0.0, seed: int | None = None) -> ScriptedExpert:
    env = env.unwrapped
    for entry in (entry for tasks in TASKS.values() for entry in tasks.values()):
        if type(env) is _load(entry.env):
            return _load(entry.expert)(env, noise=noise, seed=seed)
    raise ValueError(f"no scripted expert for {type(env).__name__}")


def register_all() -> None:
    for tasks in TASKS.values():
        for entry in tasks.values():
            if entry.gym_id not in gymnasium.registry:
                gymnasium.register(id=entry.gym_id, entry_point=entry.env)


register_all()
