"""Residual RL on BC on the real WidowX twin and a real demo store: BC first, then SAC whose actor adds a
bounded correction to the frozen BC policy's action."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from learner_helpers import (
    assert_checkpoint_acts_as_trained,
    demo_store,
    random_batch,
    run_with_snapshots,
    same,
    train_config,
    weights,
)
from robot_rl.algos.residual import Residual, ResidualConfig, plan
from robot_rl.algos.sac import ObservationShapes
from robot_rl.learner.trainer import Trainer


def small_agent(scale: float = 0.2, chunk: int = 1) -> Residual:
    torch.manual_seed(0)
    return Residual(ObservationShapes(state={"state": 5}), 2,
                    ResidualConfig(hidden=(16, 16), ensemble_size=3, chunk=chunk, residual_scale=scale))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run with chunks of 2: 30 BC updates, 80 online steps (an episode) of critic warmup, then 60
    of online RL at UTD 2; the BC policy's, the actor's and the critic's weights as each phase starts."""
    tmp_path = tmp_path_factory.mktemp("residual")
    demos = demo_store(tmp_path / "reach.zarr")
    cfg = train_config(tmp_path, "algo=residual", "task=widowx_reach", f"dataset={demos}",
                       "algo.schedule.pretrain_updates=30", "algo.schedule.online_steps=140", "algo.schedule.utd=2",
                       "algo.schedule.critic_warmup_steps=80", "algo.agent.ensemble_size=3",
                       "algo.agent.chunk=2")
    trainer = Trainer(cfg, tmp_path / "run")
    state, snapshots = run_with_snapshots(
        trainer, lambda agent: "pretraining" if agent.imitating else "critic_warmup" if agent.actor_frozen else "online",
        lambda agent: (agent.reference, agent.actor, agent.critic))
    return trainer, state, snapshots


def test_bc_then_the_critic_alone_then_the_residual_actor_train_and_bc_stays_frozen_online(trained):
    trainer, state, snapshots = trained
    assert [p["phase"] for p in state.phase_log] == ["pretraining", "critic_warmup", "online"]
    (bc_0, actor_0, critic_0), (bc_1, actor_1, critic_1), (bc_2, actor_2, critic_2) = (
        snapshots[k] for k in ("start", "critic_warmup", "online"))
    assert not same(bc_0, bc_1) and same(actor_0, actor_1) and same(critic_0, critic_1), "BC phase: BC only"
    assert same(bc_1, bc_2) and same(actor_1, actor_2) and not same(critic_1, critic_2), "warmup: the critic only"
    assert same(bc_2, weights(trainer.agent.reference)), "online RL changed the BC policy (it must stay frozen)"
    assert not same(actor_2, weights(trainer.agent.actor)), "online RL did not train the residual actor"


@pytest.mark.parametrize("scale", [0.05, 0.5])
def test_acting_stays_within_the_residual_scale_of_bc_and_is_bc_while_imitating(scale):
    agent = small_agent(scale, chunk=2)
    obs = {"state": np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)}
    with torch.no_grad():
        bc = agent.reference({"state": torch.as_tensor(obs["state"])})
    for deterministic in (True, False):
        action = torch.as_tensor(agent.act(obs, deterministic=deterministic))
        assert action.shape == (64, 2, 2)
        gap = (action.reshape(64, -1) - bc).abs()
        assert gap.max() <= scale + 1e-6 and gap.max() > 0.2 * scale, "a residual within the scale, not nothing"
    agent.begin_phase(plan(OmegaConf.create({"pretrain_updates": 1, "critic_warmup_steps": 0, "penalized_steps": 0,
                                             "online_steps": 1, "utd": 1, "offline_ratio": 0.5}))[0])
    assert torch.allclose(torch.as_tensor(agent.act(obs)).reshape(64, -1), bc), "the BC phase acts as BC"


def test_the_td_target_backs_up_the_composed_next_action_with_sac_entropy():
    agent = small_agent()
    batch = random_batch(32, 5, 2)
    torch.manual_seed(1)
    target = agent.td_target(batch)
    torch.manual_seed(1)
    with torch.no_grad():
        residual, log_prob = agent.actor.sample(agent.encoder(batch.next_obs))
        action = (agent.reference(batch.next_obs) + 0.2 * residual).clamp(-1, 1)
        members = agent.critic.random_members(2)
        q = agent.target_critic(agent.target_encoder(batch.next_obs), action, members).min(0).values
    assert torch.allclose(target, batch.reward + 0.9 * (q - agent.temperature * log_prob))


def test_the_actor_loss_moves_the_residual_toward_higher_q_without_touching_bc():
    agent = small_agent()
    batch = random_batch(64, 5, 2)
    loss, _ = agent.actor_loss(agent.encoder(batch.obs).detach(), batch)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())
    assert all(p.grad is None for p in agent.reference.parameters()), "the actor's gradient reached the BC policy"


def test_a_loaded_checkpoint_acts_as_the_run_ended(trained):
    trainer, _, _ = trained
    assert_checkpoint_acts_as_trained(trainer)


@pytest.mark.parametrize("scale", [0.0, -0.1, 3.0])
def test_a_residual_scale_outside_the_action_box_is_refused(scale):
    with pytest.raises(ValueError, match="residual_scale"):
        ResidualConfig(residual_scale=scale)


def test_a_calql_proposer_is_refused_the_residual_corrects_bc():
    with pytest.raises(ValueError, match="proposer=bc"):
        ResidualConfig(proposer="calql")
