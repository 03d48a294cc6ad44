"""State normalization: encoders standardize state inputs by the offline dataset's mean and std, set by the
trainer from the episodes it trains on, saved and restored with the weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learner_helpers import demo_store, train_config
from robot_rl.datasets import TrajectoryReader
from robot_rl.learner.checkpoint import latest_checkpoint, load_checkpoint
from robot_rl.learner.trainer import Trainer
from robot_rl.nets import ObservationEncoder
from robot_rl.nets.encoders import STD_FLOOR


def test_the_state_part_is_standardized_with_a_floor_on_the_std():
    encoder = ObservationEncoder({"a": 2, "b": 1}, {}, normalize=True)
    encoder.set_state_statistics({"b": (np.array([10.0]), np.array([0.0])), "a": (np.array([1.0, -1.0]),
                                                                                 np.array([2.0, 0.5]))})
    out = encoder({"a": torch.tensor([[3.0, 0.0]]), "b": torch.tensor([[10.5]])})
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0, 0.5 / STD_FLOOR]]))


def test_an_encoder_built_without_normalize_refuses_statistics_and_has_no_buffers():
    encoder = ObservationEncoder({"a": 1}, {})
    assert not dict(encoder.named_buffers())
    with pytest.raises(ValueError, match="normalize=False"):
        encoder.set_state_statistics({"a": (np.zeros(1), np.ones(1))})


def test_the_trainer_sets_the_statistics_of_the_demos_it_trains_on_and_a_checkpoint_keeps_them(tmp_path):
    store = demo_store(tmp_path / "reach.zarr", episodes=3)
    cfg = train_config(tmp_path, "algo=calql", "task=widowx_reach", f"dataset={store}", "demos=2",
                       "algo.schedule.offline_updates=3", "algo.agent.ensemble_size=2")
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    reader = TrajectoryReader(store)
    rows = int(reader.episode_ends[1])
    state = np.concatenate([np.asarray(reader.column(k)[:rows], dtype=np.float64) for k in ("state", "task_state")], 1)
    for encoder in (trainer.agent.encoder, trainer.agent.target_encoder):
        np.testing.assert_allclose(encoder.state_mean.numpy(), state.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(encoder.state_std.numpy(), np.maximum(state.std(0), STD_FLOOR), rtol=1e-5)
    fresh = Trainer(train_config(tmp_path, "algo=calql", "task=widowx_reach", f"dataset={store}",
                                 "algo.agent.ensemble_size=2"), tmp_path / "run2")
    assert not torch.equal(fresh.agent.encoder.state_mean, trainer.agent.encoder.state_mean), "3 demos, not 2"
    load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"), fresh.agent, {})
    torch.testing.assert_close(fresh.agent.encoder.state_mean, trainer.agent.encoder.state_mean)
    trainer.close()
    fresh.close()
