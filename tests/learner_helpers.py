"""Shared pieces of the learner tests: tiny configs and scripted-demo stores on the WidowX twin."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import torch

from robot_rl.algos.batch import Batch
from robot_rl.cli.config import load_config
from robot_rl.datasets import StoreWriter
from robot_rl.learner.policy import load_agent
from robot_rl.sim import make_env, make_expert
from robot_rl.sim.recording import record_episode
from robot_rl.tasks import split_task

# Small networks and batches: these tests check the plumbing, not the learning.
TINY = ["algo.agent.hidden=[32,32]", "algo.batch_size=16", "eval.episodes=1", "eval.video=false",
        "eval.every_env_steps=0", "eval.every_updates=0", "threads=1"]


def demo_store(path: Path, task: str = "reach", episodes: int = 4, noise: float = 0.1, seed: int = 0,
               robot: str = "widowx", **env_options) -> Path:
    """Scripted demonstrations on a twin (the WidowX's by default), recorded as `robot-rl collect` does
    (fixed-horizon episodes); ``env_options`` go to ``make_env`` (cameras, image_size, max_steps)."""
    env = make_env(robot, task, terminate_on_success=False, **env_options)
    with StoreWriter.create(path, env.embodiment) as writer:
        for i in range(episodes):
            expert = make_expert(env, noise=noise, seed=seed + i)
            record_episode(env, expert, writer, seed=seed + i, source="scripted", on_reset=expert.reset)
    env.close()
    return path


def camera_store(path: Path) -> Path:
    """Two short reach demonstrations with the front camera at 32 x 32."""
    return demo_store(path, episodes=2, cameras=("front",), image_size=(32, 32), max_steps=20)


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


def random_batch(rows: int, state_dim: int, action_dim: int, discount: float = 0.9) -> Batch:
    """A batch of random transitions on one ``state`` key, actions in [-1, 1], for checking an update's
    arithmetic on small agents."""
    return Batch(obs={"state": torch.randn(rows, state_dim)}, action=torch.rand(rows, action_dim) * 2 - 1,
                 reward=torch.rand(rows), discount=torch.full((rows,), discount),
                 next_obs={"state": torch.randn(rows, state_dim)}, valid=torch.ones(rows),
                 mc_return=torch.zeros(rows), source=torch.zeros(rows, dtype=torch.int64))


def weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def assert_checkpoint_acts_as_trained(trainer) -> None:
    """The agent loaded from the run's latest checkpoint acts exactly as the trainer's agent, online, and
    samples actions (chunks) of the same shape."""
    policy = load_agent(trainer.run_dir)
    assert not policy.agent.imitating
    rng = np.random.default_rng(1)
    obs = {k: rng.normal(size=(8, n)).astype(np.float32) for k, n in trainer.agent.shapes.state.items()}
    np.testing.assert_allclose(policy.agent.act(obs, deterministic=True), trainer.agent.act(obs, deterministic=True),
                               atol=1e-6)
    assert policy.agent.act(obs).shape == trainer.agent.act(obs).shape


def run_with_snapshots(trainer, phase_of, parts) -> tuple[object, dict[str, tuple[list[torch.Tensor], ...]]]:
    """Run ``trainer`` to the end and close it; also return the weights of ``parts(agent)`` before training
    ("start") and as the first update of each phase runs, keyed by ``phase_of(agent)``."""
    agent, update = trainer.agent, trainer.agent.update
    snapshots = {"start": tuple(weights(m) for m in parts(agent))}

    def spy(batches):
        snapshots.setdefault(phase_of(agent), tuple(weights(m) for m in parts(agent)))
        return update(batches)

    agent.update = spy
    state = trainer.run()
    trainer.close()
    return state, snapshots
