"""MuJoCo twins of the WidowX 250 S, the Franka arm and the RC car: tasks, scripted experts, and
(later) protocol twins. Needs the ``sim`` extra (mujoco, gymnasium).

    from robot_rl.sim import make_env, make_expert
    env = make_env("widowx", "pick_place")

Importing this package registers every task with gymnasium as ``robot_rl/<Task>-v0``, and picks
MuJoCo's EGL backend for offscreen cameras when ``MUJOCO_GL`` is unset and there is no display.
"""
import os

# Headless machines (robot computers, CI) render offscreen through EGL; MuJoCo reads this at import.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

try:
    import gymnasium  # noqa: F401
    import mujoco  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(f"robot_rl.sim needs the `sim` extra: pip install 'robot-rl[sim]' ({err})") from err

from robot_rl.sim.dynamics import Dynamics
from robot_rl.sim.expert import ScriptedExpert
from robot_rl.sim.registry import TASKS, env_class, make_env, make_expert, register_all, task_entry
from robot_rl.sim.twin import Evaluation, TwinEnv

register_all()

__all__ = ["TASKS", "Dynamics", "Evaluation", "ScriptedExpert", "TwinEnv", "env_class", "make_env",
           "make_expert", "register_all", "task_entry"]
