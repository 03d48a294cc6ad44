"""Shared pieces of the learner tests: tiny configs and scripted-demo stores on the WidowX twin."""
from __future__ import annotations

import subprocess
from pathlib import Path

from robot_rl.cli.config import load_config
from robot_rl.datasets import StoreWriter
from robot_rl.sim import make_env, make_expert
from robot_rl.sim.recording import record_episode
from robot_rl.tasks import split_task

# Small networks and batches: these tests check the plumbing, not the learning.
TINY = ["algo.agent.hidden=[32,32]", "algo.batch_size=16", "eval.episodes=1", "eval.video=false",
        "eval.every_env_steps=0", "eval.every_updates=0", "threads=1"]


def demo_store(path: Path, task: str = "reach", episodes: int = 4, noise: float = 0.1, seed: int = 0,
               robot: str = "widowx") -> Path:
    """Scripted demonstrations on a twin (the WidowX's by default), recorded as `robot-rl collect` does
    (fixed-horizon episodes)."""
    env = make_env(robot, task, terminate_on_success=False)
    with StoreWriter.create(path, env.embodiment) as writer:
        for i in range(episodes):
            expert = make_expert(env, noise=noise, seed=seed + i)
            record_episode(env, expert, writer, seed=seed + i, source="scripted", on_reset=expert.reset)
    env.close()
    return path


def train_config(tmp_path: Path, *overrides: str):
    return split_task(load_config("train", [*TINY, f"run_dir={tmp_path / 'run'}", *overrides]))


# A tiny SAC run on the WidowX reach twin: an untrained checkpoint for the tests of the policy node and the
# deploy graph (they check plumbing, not skill).
TINY_SAC = ["algo=sac", "task=widowx_reach", "algo.agent.hidden=[32,32]", "algo.batch_size=16",
            "algo.schedule.random_steps=40", "algo.schedule.online_steps=80", "eval.episodes=1", "eval.video=false"]


def tiny_checkpoint(run_dir: Path, *overrides: str) -> Path:
    """The run folder of a `robot-rl train` run with TINY_SAC and ``overrides`` (its checkpoints/ inside)."""
    from robot_rl.cli.main import main

    main(["train", *TINY_SAC, *overrides, f"run_dir={run_dir}"])
    return run_dir


def start_finetune(*overrides: str, log: Path) -> subprocess.Popen:
    """`robot-rl finetune` as a real process in a session of its own, its output in ``log``."""
    robot_rl = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "robot-rl")
    return subprocess.Popen([robot_rl, "finetune", *overrides], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
