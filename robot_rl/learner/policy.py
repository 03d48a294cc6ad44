"""A trained policy from a checkpoint folder: its agent with the weights, and the training config that
says which observation keys it reads. The eval command, and later the policy node, load policies here."""
from __future__ import annotations

import os

from omegaconf import OmegaConf

from robot_rl.learner.checkpoint import load_weights, resolve_checkpoint
from robot_rl.learner.trainer import build_agent, make_twin
from robot_rl.tasks import split_task


def load_policy(checkpoint: str | os.PathLike, task: str | None = None, dynamics: dict | None = None):
    """(agent in eval mode, a twin for it, the config, the checkpoint folder). The twin runs the
    checkpoint's task, or ``task`` on the same robot, with ``dynamics`` if given."""
    folder = resolve_checkpoint(checkpoint)
    trained = OmegaConf.load(folder / "config.yaml")
    cfg = split_task(OmegaConf.merge(trained, {"task": task or trained.task}))
    if cfg.robot != trained.robot:
        raise ValueError(f"task={task!r} is for robot {cfg.robot!r}, the checkpoint drives {trained.robot!r}")
    if dynamics is not None:
        cfg.sim.dynamics = dynamics
    env = make_twin(cfg)
    agent = build_agent(trained, env.embodiment)
    load_weights(agent, folder)
    return agent.eval(), env, cfg, folder
