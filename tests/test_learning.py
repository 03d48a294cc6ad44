"""Learning smoke tests on CPU with small budgets (marked slow; `make test FAST=1` skips them).

SAC settings for the 5 Hz twins: discount 0.9 with 3-step returns (a 40-step episode needs no longer
horizon, and it propagates values in far fewer updates than 0.99), learning rates 1e-3, initial
temperature 0.05 (rewards are in [0, 1] per step, so the paper's 1.0 makes the entropy bonus dominate
for thousands of updates).
"""
from __future__ import annotations

import numpy as np
import pytest

from learner_helpers import demo_store, train_config
from robot_rl.learner.metrics import read_evaluations
from robot_rl.learner.rollout import evaluate
from robot_rl.learner.trainer import Trainer, make_twin

TWIN_SAC = ["algo.agent.hidden=[128,128]", "algo.batch_size=128", "algo.agent.init_temperature=0.05",
            "algo.discount=0.9", "algo.n_step=3", "algo.agent.actor_lr=1e-3", "algo.agent.critic_lr=1e-3"]


@pytest.mark.slow
def test_sac_solves_widowx_reach_from_scratch(tmp_path):
    cfg = train_config(tmp_path, "algo=sac", "task=widowx_reach", *TWIN_SAC, "algo.schedule.random_steps=500",
                       "algo.schedule.online_steps=10000", "eval.episodes=10")
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    trainer.close()
    start, final = read_evaluations(tmp_path / "run")[0], read_evaluations(tmp_path / "run")[-1]
    assert start["success_rate"] == 0.0
    assert final["success_rate"] >= 0.7, f"SAC reached the target in {final['success_rate']:.0%} of episodes"


@pytest.mark.slow
def test_calql_pretraining_on_scripted_demos_beats_a_random_policy_on_pick_place(tmp_path):
    """Offline only, 1500 updates: far from solving the task (see benchmarks/learning_curves.py), but the
    pretrained policy must collect more of the staged reward than uniform random actions."""
    demos = demo_store(tmp_path / "demos.zarr", task="pick_place", episodes=30, noise=0.05)
    cfg = train_config(tmp_path, "algo=calql", "task=widowx_pick_place", f"dataset={demos}",
                       "algo.agent.hidden=[128,128]", "algo.batch_size=128", "algo.discount=0.9",
                       "algo.n_step=3", "algo.agent.ensemble_size=2", "algo.agent.n_actions=5",
                       "algo.agent.target_entropy_scale=0", "algo.schedule.offline_updates=1500",
                       "eval.episodes=10")
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    pretrained = trainer.last_eval
    rng = np.random.default_rng(0)
    random = evaluate(lambda obs: rng.uniform(-1, 1, (1, 7)).astype(np.float32), make_twin(cfg),
                      cfg.eval.episodes, cfg.eval.seed)
    trainer.close()
    assert pretrained["return"] > 2.0 * random["return"], (pretrained, random)
