"""MuJoCo twins of the WidowX 250 S, the Franka arm and the RC car: tasks, scripted experts, and
(later) protocol twins. Needs the ``sim`` extra (mujoco, gymnasium).

    from robot_rl.sim import make_env, make_expert
    env = make_env("widowx", "pick_place")

Importing this package picks MuJoCo's EGL backend for offscreen cameras when ``MUJOCO_GL`` is unset, there
is no display and libEGL is installed (without it, physics still runs; only cameras need a GL backend). Its names load on first use, so ``robot_rl.sim.specs`` (every robot's embodiment
spec) and the robots' constants import without MuJoCo; the first use of the task registry (``make_env``,
``TASKS``, ...) registers every task with gymnasium as ``robot_rl/<Task>-v0``.
"""
import ctypes.util
import os

# Headless machines (robot computers, CI) render offscreen through EGL; MuJoCo reads this at import, and
# fails to import at all when asked for EGL on a machine without libEGL (a bare GPU server, say).
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY") and ctypes.util.find_library("EGL"):
    os.environ["MUJOCO_GL"] = "egl"

from robot_rl.sim.lazy import lazy_exports

_EXPORTS = {
    "Dynamics": "robot_rl.sim.dynamics",
    "ScriptedExpert": "robot_rl.sim.expert",
    "Evaluation": "robot_rl.sim.twin",
    "TwinEnv": "robot_rl.sim.twin",
    **{name: "robot_rl.sim.registry"
       for name in ("TASKS", "env_class", "make_env", "make_expert", "register_all", "task_entry")},
    **{name: "robot_rl.sim.specs" for name in ("embodiment_spec", "task_facts")},
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
