"""Draw a twin's next task while its robot stays where it is (for a twin that a driver node holds).

    reset_task_keeping_robot(backend.env, seed=7)   # under the lock its physics thread holds

env.reset(seed) draws the new task (objects, target, dynamics), then the robot's joints and actuator
set-points are put back. A real arm cannot jump, and the driver node would not let the twin's: its
safety filter holds the last target and would pull a teleported arm straight back. Shared by
``ScriptedTeleop`` and ``TwinTaskNode``'s ``reset_task`` service.
"""
from __future__ import annotations

import numpy as np


def reset_task_keeping_robot(env, seed: int | None = None) -> None:
    """env.reset(seed=seed), with the robot's joints, velocities and actuator set-points restored."""
    env = env.unwrapped if hasattr(env, "unwrapped") else env
    robot = robot_state(env)
    env.reset(seed=seed)
    restore_robot_state(env, robot)


def robot_joint_addresses(model) -> tuple[np.ndarray, np.ndarray]:
    """qpos and qvel addresses of every joint but free ones (objects): the robot's joints."""
    import mujoco

    joints = [j for j in range(model.njnt) if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE]
    qpos = np.array([model.jnt_qposadr[j] for j in joints], dtype=int)
    qvel = np.array([model.jnt_dofadr[j] for j in joints], dtype=int)
    return qpos, qvel


def robot_state(env) -> dict:
    qpos, qvel = robot_joint_addresses(env.model)
    data = env.data
    state = {"qpos": data.qpos[qpos].copy(), "qvel": data.qvel[qvel].copy(), "ctrl": data.ctrl.copy()}
    if hasattr(env, "set_target"):  # a Cartesian controller's target (the Franka twin's mocap) is a set-point too
        state["target"] = (env.target_pos.copy(), env.target_quat.copy())
    return state


def restore_robot_state(env, state: dict) -> None:
    import mujoco

    qpos, qvel = robot_joint_addresses(env.model)
    data = env.data
    data.qpos[qpos], data.qvel[qvel], data.ctrl[:] = state["qpos"], state["qvel"], state["ctrl"]
    if "target" in state:
        env.set_target(*state["target"])
    mujoco.mj_forward(env.model, data)
