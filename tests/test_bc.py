"""Behaviour cloning (algo=bc): its loss, and short runs through the trainer on the real WidowX twin with
real demonstration stores (state, cameras, chunks). They check that BC learns something, not how well."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learner_helpers import camera_store, demo_store, train_config
from robot_rl.algos.batch import Batch
from robot_rl.algos.bc import BC, BCConfig
from robot_rl.algos.sac import ObservationShapes
from robot_rl.learner.metrics import read_evaluations
from robot_rl.learner.trainer import Trainer


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    return demo_store(tmp_path_factory.mktemp("bc") / "reach.zarr", episodes=8)


def chunk_batch(action, mask):
    n = len(action)
    return Batch({"s": torch.zeros(n, 2)}, torch.tensor(action), torch.zeros(n), torch.zeros(n), {"s": torch.zeros(n, 2)},
                 torch.ones(n), torch.zeros(n), torch.zeros(n, dtype=torch.int64), torch.tensor(mask))


@pytest.mark.parametrize("loss, expected", [("mse", (1.0 + 4.0) / 2), ("l1", (1.0 + 2.0) / 2)])
def test_the_loss_counts_only_the_chunks_real_actions(loss, expected):
    agent = BC(ObservationShapes(state={"s": 2}), 1, BCConfig(hidden=(4,), chunk=3, loss=loss))
    # one row, h = 3, A = 1: the last action is padding past the episode's end and is off by 100
    batch = chunk_batch([[1.0, 2.0, 103.0]], [[1.0, 1.0, 0.0]])
    assert agent.loss(torch.tensor([[0.0, 0.0, 3.0]]), batch).item() == pytest.approx(expected)


def test_bad_loss_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"algo.agent.loss: expected one of \('mse', 'l1'\), found 'huber'"):
        BCConfig.from_dict({"loss": "huber"})


def test_bc_on_state_learns_to_reach_better_than_untrained(tmp_path, reach_demos):
    cfg = train_config(tmp_path, "algo=bc", "task=widowx_reach", f"dataset={reach_demos}", "algo.agent.hidden=[64,64]",
                       "algo.batch_size=64", "algo.schedule.offline_updates=600", "eval.episodes=3")
    trainer = Trainer(cfg, tmp_path / "run")
    state = trainer.run()
    trainer.close()
    start, final = read_evaluations(tmp_path / "run")[0], read_evaluations(tmp_path / "run")[-1]
    assert state.critic_updates == 600 and state.phase_log[0]["offline_rows"] == 600 * 64
    assert final["return"] > start["return"] + 5.0, f"BC return {final['return']:.2f}, untrained {start['return']:.2f}"


def test_bc_on_a_camera_with_chunks_trains_the_conv_encoder_and_acts_in_chunks(tmp_path):
    store = camera_store(tmp_path / "cam.zarr")
    cfg = train_config(tmp_path, "algo=bc", "task=widowx_reach", f"dataset={store}", "obs_keys=[state]",
                       "cameras=[front]", "image_size=[32,32]", "algo.agent.chunk=3", "algo.batch_size=8",
                       "algo.agent.feature_dim=8", "algo.schedule.offline_updates=5", "eval.episodes=1")
    trainer = Trainer(cfg, tmp_path / "run")
    conv_before = [p.clone() for p in trainer.agent.encoder.cameras["front"].parameters()]
    obs = {k: v[None] for k, v in trainer.eval_env.reset(seed=0)[0].items()}
    trainer.run()
    assert trainer.agent.act(obs).shape == (1, 3, trainer.agent.action_dim)
    assert np.abs(trainer.agent.act(obs)).max() <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(conv_before, trainer.agent.encoder.cameras["front"].parameters()))
    trainer.close()
