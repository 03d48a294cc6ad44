"""Reinforcement learning from a camera: a short RLPD run through the trainer on the real WidowX twin, reading
the front camera and the arm's state from a real demonstration store. It checks the plumbing of the conv
encoder (the critic trains it, its strides come from the config, a checkpoint loads back), not how well it learns."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learner_helpers import camera_store, train_config
from robot_rl.algos.sac import SACConfig
from robot_rl.learner.policy import load_agent
from robot_rl.learner.trainer import Trainer
from robot_rl.nets import ConvEncoder


def conv_strides(encoder: ConvEncoder) -> list[int]:
    return [layer.stride[0] for layer in encoder.convs if isinstance(layer, torch.nn.Conv2d)]


def test_the_default_encoder_is_drqs_and_strides_are_configurable():
    assert conv_strides(ConvEncoder((64, 64, 3))) == [2, 1, 1, 1]
    light = ConvEncoder((64, 64, 3), feature_dim=8, strides=(2, 2, 2, 1))
    assert conv_strides(light) == [2, 2, 2, 1]
    assert light.head[0].in_features == 32 * 5 * 5  # 64 -> 31 -> 15 -> 7 -> 5
    assert light(torch.zeros(3, 64, 64, 3, dtype=torch.uint8)).shape == (3, 8)
    assert SACConfig.from_dict({"conv_strides": [2, 2]}).conv_strides == (2, 2)  # YAML lists become tuples


def test_rlpd_on_a_camera_trains_its_encoder_and_reloads_with_its_strides(tmp_path):
    store = camera_store(tmp_path / "cam.zarr")
    cfg = train_config(tmp_path, "algo=rlpd", "task=widowx_reach", f"dataset={store}", "obs_keys=[state]",
                       "cameras=[front]", "image_size=[32,32]", "algo.agent.conv_strides=[2,2,1]",
                       "algo.agent.feature_dim=8", "algo.agent.ensemble_size=2", "algo.schedule.utd=2",
                       "algo.schedule.online_steps=12", "max_steps=6")
    trainer = Trainer(cfg, tmp_path / "run")
    agent = trainer.agent
    assert conv_strides(agent.encoder.cameras["front"]) == [2, 2, 1]
    conv_before = [p.clone() for p in agent.encoder.cameras["front"].parameters()]
    obs = {k: v[None] for k, v in trainer.eval_env.reset(seed=0)[0].items()}
    state = trainer.run()
    trainer.close()
    assert state.critic_updates > 0
    assert any(not torch.equal(a, b) for a, b in zip(conv_before, agent.encoder.cameras["front"].parameters()))
    reloaded = load_agent(tmp_path / "run")
    assert conv_strides(reloaded.agent.encoder.cameras["front"]) == [2, 2, 1]
    np.testing.assert_allclose(reloaded.agent.act(obs, deterministic=True), agent.act(obs, deterministic=True),
                               atol=1e-6)


@pytest.mark.parametrize("strides", [[], [0]])
def test_bad_strides_are_refused(strides):
    with pytest.raises(ValueError, match="conv_strides"):
        SACConfig.from_dict({"conv_strides": strides})


def test_strides_that_shrink_the_image_to_nothing_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"conv_strides \[2, 2, 2, 2\]: the image \(16 x 16\) shrinks to nothing"):
        ConvEncoder((16, 16, 3), strides=(2, 2, 2, 2))
