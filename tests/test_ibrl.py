"""IBRL on the real WidowX twin and a real demo store: BC first, then the critic picks between the BC
policy's proposal and the RL actor's, in acting and in the TD target."""
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
from robot_rl.algos.ibrl import IBRL, IBRLConfig, plan
from robot_rl.algos.sac import ObservationShapes
from robot_rl.learner.trainer import Trainer

SCHEDULE = OmegaConf.create({"pretrain_updates": 1, "critic_warmup_steps": 0, "penalized_steps": 0, "online_steps": 1,
                             "utd": 1, "offline_ratio": 0.5})  # pretraining, critic warmup, penalized (both 0), online
PRETRAINING, ONLINE = 0, 3  # indices into plan(SCHEDULE)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny IBRL run with chunks of 2: 30 BC updates, then 60 online steps at UTD 2. Returns the trainer
    (closed), its final state, and the BC and critic weights before training and at the first online update."""
    tmp_path = tmp_path_factory.mktemp("ibrl")
    demos = demo_store(tmp_path / "reach.zarr")
    cfg = train_config(tmp_path, "algo=ibrl", "task=widowx_reach", f"dataset={demos}", "algo.schedule.pretrain_updates=30",
                       "algo.schedule.online_steps=60", "algo.schedule.utd=2", "algo.agent.ensemble_size=3",
                       "algo.agent.chunk=2")
    trainer = Trainer(cfg, tmp_path / "run")
    state, snapshots = run_with_snapshots(trainer, lambda agent: "pretraining" if agent.pretraining else "online",
                                          lambda agent: (agent.reference, agent.critic))
    return trainer, state, snapshots


def test_the_bc_phase_trains_only_the_bc_policy_and_online_rl_leaves_it_frozen(trained):
    trainer, state, snapshots = trained
    imitation, online = state.phase_log
    assert imitation["phase"] == "pretraining" and imitation["offline_rows"] == 30 * 16 and imitation["online_rows"] == 0
    assert online["phase"] == "online" and online["online_rows"] > 0 and online["offline_rows"] > 0
    agent = trainer.agent
    (bc_start, critic_start), (bc_online, critic_online) = snapshots["start"], snapshots["online"]
    assert not same(bc_start, bc_online), "the BC phase did not train the BC policy"
    assert same(critic_start, critic_online), "the BC phase trained the critic"
    assert same(bc_online, weights(agent.reference)), "online RL changed the BC policy (it must stay frozen)"
    assert not same(critic_online, weights(agent.critic)), "online RL did not train the critic"


def test_acting_takes_per_state_the_proposal_the_critic_scores_higher_and_only_bc_while_imitating():
    torch.manual_seed(0)
    agent = IBRL(ObservationShapes(state={"state": 5}), 2, IBRLConfig(hidden=(16, 16), ensemble_size=3, chunk=2))
    obs = {"state": np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)}
    with torch.no_grad():
        state = torch.as_tensor(obs["state"])
        features = agent.encoder({"state": state})
        rl, bc = agent.actor.mode(features), agent.reference({"state": state})
        bc_wins = agent.critic(features, bc).min(0).values > agent.critic(features, rl).min(0).values
    assert 0 < int(bc_wins.sum()) < 64, "untrained nets: each proposal wins somewhere"
    chosen = torch.as_tensor(agent.act(obs, deterministic=True))
    assert chosen.shape == (64, 2, 2)
    assert torch.allclose(chosen.reshape(64, -1), torch.where(bc_wins[:, None], bc, rl))
    agent.begin_phase(plan(SCHEDULE)[PRETRAINING])
    assert torch.allclose(torch.as_tensor(agent.act(obs)).reshape(64, -1), bc), "the BC phase acts as BC"


def test_the_td_target_backs_up_the_better_proposal_under_the_target_critic():
    torch.manual_seed(0)
    agent = IBRL(ObservationShapes(state={"state": 5}), 2, IBRLConfig(hidden=(16, 16), ensemble_size=4))
    batch = random_batch(32, 5, 2)
    torch.manual_seed(1)
    target = agent.td_target(batch)
    torch.manual_seed(1)
    with torch.no_grad():
        rl = agent.actor.sample(agent.encoder(batch.next_obs))[0]
        members = agent.critic.random_members(2)
        features = agent.target_encoder(batch.next_obs)
        q_rl = agent.target_critic(features, rl, members).min(0).values
        q_bc = agent.target_critic(features, agent.reference(batch.next_obs), members).min(0).values
    assert torch.allclose(target, batch.reward + 0.9 * torch.maximum(q_rl, q_bc))
    assert (q_bc > q_rl).any() and (q_rl > q_bc).any(), "untrained nets: each proposal wins somewhere"


def test_a_loaded_checkpoint_acts_as_the_run_ended(trained):
    trainer, _, _ = trained
    assert_checkpoint_acts_as_trained(trainer)


def test_entropy_backup_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="backup_entropy=false"):
        IBRLConfig(backup_entropy=True)


@pytest.fixture(scope="module")
def trained_from_calql(tmp_path_factory):
    """The same tiny run with ``proposer: calql``: 30 Cal-QL updates, then 60 online steps (the first 20
    penalized). Returns the trainer (closed), its final state, and the actor, critic and proposer weights at the
    start of each phase."""
    tmp_path = tmp_path_factory.mktemp("ibrl_calql")
    demos = demo_store(tmp_path / "reach.zarr")
    cfg = train_config(tmp_path, "algo=ibrl", "algo.agent.proposer=calql", "task=widowx_reach", f"dataset={demos}",
                       "algo.schedule.pretrain_updates=30", "algo.schedule.online_steps=60", "algo.schedule.utd=2",
                       "algo.schedule.penalized_steps=20", "algo.agent.ensemble_size=3", "algo.agent.n_actions=2",
                       "algo.agent.chunk=2")
    trainer = Trainer(cfg, tmp_path / "run")
    state, snapshots = run_with_snapshots(trainer, lambda agent: "pretraining" if agent.pretraining else "online",
                                          lambda agent: (agent.actor, agent.critic, agent.reference.actor))
    return trainer, state, snapshots


def test_calql_pretraining_trains_actor_and_critic_and_its_mode_proposes_online_frozen(trained_from_calql):
    trainer, state, snapshots = trained_from_calql
    assert [p["phase"] for p in state.phase_log] == ["pretraining", "penalized", "online"]
    (actor_start, critic_start, proposer_start) = snapshots["start"]
    (actor_online, critic_online, proposer_online) = snapshots["online"]
    assert not same(actor_start, actor_online) and not same(critic_start, critic_online), "pretraining trained nothing"
    assert same(proposer_online, actor_online), "online RL does not start with the pretrained actor as the proposer"
    agent = trainer.agent
    assert same(proposer_online, weights(agent.reference.actor)), "online RL changed the proposer (it must stay frozen)"
    assert not same(actor_online, weights(agent.actor)), "online RL did not train the RL actor"


def test_calql_pretraining_is_conservative_with_its_own_target_and_acts_with_its_actor():
    torch.manual_seed(0)
    config = IBRLConfig(hidden=(16, 16), ensemble_size=3, proposer="calql", calql=True, actor_extraction="weighted_bc")
    agent = IBRL(ObservationShapes(state={"state": 5}), 2, config)
    phases = plan(SCHEDULE)
    agent.begin_phase(phases[PRETRAINING])
    assert agent.conservative and not agent.imitating
    info = agent.update([random_batch(32, 5, 2)])
    assert "cql_gap" in info and "bc_chosen_in_target" not in info, "pretraining is not Cal-QL's"
    obs = {"state": np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)}
    with torch.no_grad():
        mode = agent.actor.mode(agent.encoder({"state": torch.as_tensor(obs["state"])}))
    assert torch.allclose(torch.as_tensor(agent.act(obs, deterministic=True)), mode), "pretraining acts as its actor"
    agent.begin_phase(phases[ONLINE])
    assert not agent.conservative and same(weights(agent.reference.actor), weights(agent.actor))
    with torch.no_grad():
        agent.actor.net[-1].bias.add_(1.0)  # as online RL would move it
    agent.begin_phase(phases[ONLINE])  # a resume into the online phase
    assert not same(weights(agent.reference.actor), weights(agent.actor)), "a resume replaced the frozen proposer"


def test_a_checkpoint_from_calql_pretraining_acts_as_the_run_ended(trained_from_calql):
    trainer, _, _ = trained_from_calql
    assert_checkpoint_acts_as_trained(trainer)


def test_an_unknown_proposer_is_refused_by_name():
    with pytest.raises(ValueError, match="proposer='dagger'"):
        IBRLConfig(proposer="dagger")



def test_the_penalized_phase_keeps_calqls_penalty_on_the_critic_with_ibrls_target_and_sacs_actor():
    torch.manual_seed(0)
    schedule = OmegaConf.merge(SCHEDULE, {"critic_warmup_steps": 2, "penalized_steps": 3, "online_steps": 10})
    phases = plan(schedule)
    assert [(p.name, p.length) for p in phases] == [("pretraining", 1), ("critic_warmup", 2), ("penalized", 3),
                                                     ("online", 5)]
    config = IBRLConfig(hidden=(16, 16), ensemble_size=3, proposer="calql", calql=True, n_actions=2,
                        actor_extraction="weighted_bc")
    agent = IBRL(ObservationShapes(state={"state": 5}), 2, config)
    agent.begin_phase(phases[2])
    info = agent.update([random_batch(32, 5, 2), random_batch(32, 5, 2)])
    assert "cql_gap" in info and "bc_chosen_in_target" in info, "penalized: Cal-QL's penalty on IBRL's target"
    assert not agent.extracting, "penalized: the actor is SAC's, not the extraction"
    agent.begin_phase(phases[3])
    assert "cql_gap" not in agent.update([random_batch(32, 5, 2)]), "online drops the penalty"
    with pytest.raises(ValueError, match=r"critic_warmup_steps \+ penalized_steps=14 must be between 0 and algo.schedule.online_steps=10"):
        plan(OmegaConf.merge(schedule, {"penalized_steps": 12}))
    bc_proposer = IBRL(ObservationShapes(state={"state": 5}), 2, IBRLConfig(hidden=(16, 16), ensemble_size=3))
    with pytest.raises(ValueError, match="needs algo.agent.proposer=calql"):
        bc_proposer.begin_phase(phases[2])
