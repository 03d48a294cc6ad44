"""H2O: the dynamics ratio, gap weights and penalty against hand computation on fixed tensors, the clip
of the sim weights, the discriminators on real twin transitions (nominal "sim" against perturbed
"real"), the trainer's plumbing, and a short sim-to-real learning run on the WidowX twin."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learner_helpers import train_config
from robot_rl.algos.batch import Batch
from robot_rl.algos.h2o import (
    H2O,
    H2OConfig,
    discriminator_losses,
    dynamics_gap,
    dynamics_ratio,
    gap_penalty,
    gap_weights,
    log_real_over_sim,
)
from robot_rl.algos.sac import ObservationShapes
from robot_rl.cli.main import main
from robot_rl.datasets import StoreWriter
from robot_rl.learner.checkpoint import latest_checkpoint, load_checkpoint
from robot_rl.learner.rollout import evaluate
from robot_rl.learner.trainer import Trainer
from robot_rl.sim import make_env, make_expert
from robot_rl.sim.recording import record_episode

TOL = dict(rel=1e-5, abs=1e-6)
SA_LOGITS = [[0.5, -1.0], [1.5, 0.2], [-0.3, 0.7]]
SAS_LOGITS = [[1.0, 0.0], [-2.0, 1.5], [0.4, 0.4]]


def softmax(logits):
    exps = [math.exp(x) for x in logits]
    return [e / sum(exps) for e in exps]


def ratio_ref(sa, sas):
    """P_real/P_sim = p_sas(real) p_sa(sim) / (p_sas(sim) p_sa(real)), p_sas from the summed logits."""
    p_sa, p_sas = softmax(sa), softmax([x + y for x, y in zip(sa, sas)])
    return p_sas[0] * p_sa[1] / (p_sas[1] * p_sa[0])


def logsumexp_ref(xs):
    top = max(xs)
    return top + math.log(sum(math.exp(x - top) for x in xs))


def tensor(x):
    return torch.tensor(x, dtype=torch.float32)


# --- fixed tensors against hand computation -------------------------------------------------------
def test_dynamics_ratio_is_bayes_rule_on_the_two_discriminators():
    expected = [ratio_ref(sa, sas) for sa, sas in zip(SA_LOGITS, SAS_LOGITS)]
    got = log_real_over_sim(tensor(SA_LOGITS), tensor(SAS_LOGITS)).exp().tolist()
    assert got == pytest.approx(expected, **TOL)
    assert expected[0] > 1 > expected[1] and expected[2] == pytest.approx(1.0)  # one of each side
    clipped = dynamics_ratio(tensor(SA_LOGITS), tensor(SAS_LOGITS), 1e-5, 1.0).tolist()
    assert clipped == pytest.approx([min(r, 1.0) for r in expected], **TOL)


def test_sim_weights_stay_within_their_clip():
    extreme_sas = tensor([[-50.0, 50.0], [50.0, -50.0], [0.0, 0.0]])  # far outside [1e-5, 1] either way
    ratio = dynamics_ratio(torch.zeros(3, 2), extreme_sas, 1e-5, 1.0)
    assert ratio.tolist() == pytest.approx([1e-5, 1.0, 1.0])
    random = dynamics_ratio(torch.randn(1000, 2) * 30, torch.randn(1000, 2) * 30, 1e-5, 1.0)
    assert random.min() >= 1e-5 and random.max() <= 1.0
    # an agent's own discriminators, on arbitrary inputs
    agent = H2O(ObservationShapes(state={"s": 3}), 2, H2OConfig(hidden=(16,), discriminator_hidden=(16,)))
    agent.observe_real_states(torch.randn(10, 3))
    ratio, u = agent.sim_trust(torch.randn(64, 3) * 5, torch.rand(64, 2) * 2 - 1, torch.randn(64, 3) * 5)
    assert ratio.min() >= 1e-5 and ratio.max() <= 1.0
    assert u.min() >= agent.config.gap_min and u.max() <= agent.config.gap_max


def test_dynamics_gap_weights_and_penalty_match_hand_computation():
    # log P_sim/P_real at 4 perturbed next states of 3 sim rows; row 1 averages below 0 (clipped up)
    log_sim_over_real = [[0.2, 0.6, 0.1, 0.3], [-0.5, 0.1, -0.2, 0.0], [1.2, 0.8, 2.0, 0.4]]
    u = dynamics_gap(tensor(log_sim_over_real), 1e-30, 1.0)
    u_ref = [min(max(sum(r) / 4, 1e-30), 1.0) for r in log_sim_over_real]
    assert u.tolist() == pytest.approx(u_ref, rel=1e-5)
    assert u_ref[1] == 1e-30 and u_ref[2] == 1.0
    w = gap_weights(u)
    w_ref = [x / sum(u_ref) for x in u_ref]
    assert w.tolist() == pytest.approx(w_ref, rel=1e-5)
    q_sim, q_real = [[1.0, 2.0, -0.5], [0.3, -1.0, 4.0]], [[0.5, 1.5], [2.0, -3.0]]
    for t in (1.0, 0.5):
        per_member = [t * logsumexp_ref([(q + math.log(wi)) / t for q, wi in zip(qs, w_ref)]) - sum(qr) / len(qr)
                      for qs, qr in zip(q_sim, q_real)]
        got = gap_penalty(tensor(q_sim), w, tensor(q_real), temperature=t, clip=1000.0)
        assert got.item() == pytest.approx(sum(per_member) / 2, rel=1e-5)
        clipped = [min(max(x, -0.2), 0.2) for x in per_member]  # each member's gap is clipped on its own
        assert min(per_member) < -0.2 and max(per_member) > 0.2
        got = gap_penalty(tensor(q_sim), w, tensor(q_real), temperature=t, clip=0.2)
        assert got.item() == pytest.approx(sum(clipped) / 2, rel=1e-5, abs=1e-6)


def test_discriminator_losses_are_cross_entropy_balanced_over_real_and_sim():
    source = torch.tensor([0, 1, 1])
    sa_loss, sas_loss = discriminator_losses(tensor(SA_LOGITS), tensor(SAS_LOGITS), source)

    def ce(rows):
        real = [-math.log(softmax(r)[0]) for r, s in zip(rows, source.tolist()) if s == 0]
        sim = [-math.log(softmax(r)[1]) for r, s in zip(rows, source.tolist()) if s == 1]
        return sum(real) / len(real) + sum(sim) / len(sim)
    assert sa_loss.item() == pytest.approx(ce(SA_LOGITS), **TOL)
    assert sas_loss.item() == pytest.approx(ce([[a + b for a, b in zip(x, y)] for x, y in zip(SA_LOGITS, SAS_LOGITS)]),
                                            **TOL)


# the whole critic loss, with a linear critic and fixed stand-ins for the policy and the discriminators
ONLINE = [(1.0, 2.0, 0.5), (-0.5, 1.0, 0.0)]   # member i: Q = w * sum(s) + c * a + b
TARGET = [(0.8, 1.5, 0.2), (-3.0, 0.5, -1.0)]
OBS = [[0.1, -0.2], [0.5, 0.3], [-0.4, 0.2], [0.3, 0.3], [-0.1, -0.6]]
NEXT_OBS = [[0.2, 0.0], [-0.3, 0.6], [0.1, 0.1], [0.6, 0.2], [0.0, -0.4]]
ACTION, REWARD, DISCOUNT = [0.3, -0.6, 0.9, 0.2, -0.1], [1.0, -2.0, 0.5, 0.3, 0.0], [0.9, 0.0, 0.9, 0.9, 0.9]
SOURCE = [0, 0, 1, 1, 1]


def q_ref(member, s, a):
    w, c, b = member
    return w * sum(s) + c * a + b


def fake_policy(features):
    x = features.sum(-1)
    return torch.tanh(0.5 * x).unsqueeze(-1), -0.3 * x


def fake_logits(s, a, s_next):
    """D_sa = (0.3 sum(s) + a, -0.2 sum(s)); D_sas = (0.5 sum(s') - 0.1, a - sum(s'))."""
    x, y, a = s.sum(-1), s_next.sum(-1), a[:, 0]
    return torch.stack([0.3 * x + a, -0.2 * x], -1), torch.stack([0.5 * y - 0.1, a - y], -1)


def fake_logits_ref(s, a, s_next):
    return [0.3 * sum(s) + a, -0.2 * sum(s)], [0.5 * sum(s_next) - 0.1, a - sum(s_next)]


def test_critic_loss_is_real_td_plus_ratio_weighted_sim_td_plus_the_gap_penalty(monkeypatch):
    config = H2OConfig(hidden=(), ensemble_size=2, target_subset=2, backup_entropy=False, gap_samples=3,
                       gap_noise_scale=0.0, gap_min=1e-30, gap_max=10.0, penalty_weight=0.5)
    agent = H2O(ObservationShapes(state={"s": 2}), 1, config)
    for critic, members in ((agent.critic, ONLINE), (agent.target_critic, TARGET)):
        with torch.no_grad():
            for i, (w, c, b) in enumerate(members):
                critic.net.head.weight[i, :, 0] = tensor([w, w, c])
                critic.net.head.bias[i] = b
    monkeypatch.setattr(agent.actor, "sample", fake_policy)
    monkeypatch.setattr(agent, "logits", fake_logits)
    agent.observe_real_states(tensor(OBS[:2]))
    n = len(OBS)
    batch = Batch(obs={"s": tensor(OBS)}, action=tensor(ACTION).unsqueeze(-1), reward=tensor(REWARD),
                  discount=tensor(DISCOUNT), next_obs={"s": tensor(NEXT_OBS)}, valid=torch.ones(n),
                  mc_return=torch.zeros(n), source=torch.tensor(SOURCE))
    loss, info = agent.critic_loss(batch)

    target = [r + d * min(q_ref(m, s2, math.tanh(0.5 * sum(s2))) for m in TARGET)
              for s2, r, d in zip(NEXT_OBS, REWARD, DISCOUNT)]
    real, sim = [i for i in range(n) if SOURCE[i] == 0], [i for i in range(n) if SOURCE[i] == 1]
    ratio = {i: min(max(ratio_ref(*fake_logits_ref(OBS[i], ACTION[i], NEXT_OBS[i])), 1e-5), 1.0) for i in sim}
    # no noise on the perturbed next states (gap_noise_scale 0): u = log P_sim/P_real at s', clipped
    u = {i: min(max(-math.log(ratio_ref(*fake_logits_ref(OBS[i], ACTION[i], NEXT_OBS[i]))), 1e-30), 10.0)
         for i in sim}
    w = {i: u[i] / sum(u.values()) for i in sim}
    td_real = td_sim = penalty = 0.0
    for m in ONLINE:
        q = [q_ref(m, s, a) for s, a in zip(OBS, ACTION)]
        td_real += sum((q[i] - target[i]) ** 2 for i in real) / len(real) / 2
        td_sim += sum(ratio[i] * (q[i] - target[i]) ** 2 for i in sim) / len(sim) / 2
        penalty += (logsumexp_ref([q[i] + math.log(w[i]) for i in sim]) - sum(q[i] for i in real) / len(real)) / 2
    assert any(r < 1.0 for r in ratio.values()) and any(r == 1.0 for r in ratio.values()), ratio
    assert info["td_real"] == pytest.approx(td_real, rel=1e-5)
    assert info["td_sim"] == pytest.approx(td_sim, rel=1e-5)
    assert info["h2o_gap"] == pytest.approx(penalty, rel=1e-5)
    assert loss.item() == pytest.approx(td_real + td_sim + 0.5 * penalty, rel=1e-5)


def test_real_state_std_is_the_std_of_every_real_state_seen():
    agent = H2O(ObservationShapes(state={"s": 3}), 2, H2OConfig(hidden=(8,), discriminator_hidden=(8,)))
    with pytest.raises(RuntimeError, match="no real transitions"):
        _ = agent.real_state_std
    rng = np.random.default_rng(0)
    chunks = [rng.normal([0.0, 5.0, -1.0], [0.1, 2.0, 0.5], (n, 3)) for n in (7, 30, 64)]
    for chunk in chunks:
        agent.observe_real_states(torch.tensor(chunk, dtype=torch.float32))
    expected = np.concatenate(chunks).astype(np.float32).std(0) + 1e-3
    np.testing.assert_allclose(agent.real_state_std.numpy(), expected, rtol=1e-4)


# --- the discriminators on the twin ----------------------------------------------------------------
def random_transitions(dynamics: str, steps: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(state, action, next state) of the RC car twin under uniform random actions."""
    env = make_env("rc_car", "goal", dynamics=dynamics, terminate_on_success=False)
    rng, rows, episode = np.random.default_rng(seed), [], 0
    obs, _ = env.reset(seed=seed)
    while len(rows) < steps:
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        next_obs, _, terminated, truncated, _ = env.step(action)
        rows.append((obs["state"], action, next_obs["state"]))
        obs = next_obs
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
    env.close()
    return tuple(torch.tensor(np.stack(column)) for column in zip(*rows))


def test_discriminators_separate_perturbed_from_nominal_transitions():
    """Real = the `perturbed` knob set, sim = nominal, same random-action behaviour in both: D_sas must
    tell the dynamics apart on held-out transitions (balanced accuracy > 0.8)."""
    torch.manual_seed(0)
    real, sim = random_transitions("perturbed", 3000, 0), random_transitions("nominal", 3000, 50_000)
    agent = H2O(ObservationShapes(state={"state": 8}), 2, H2OConfig(hidden=(8,), discriminator_hidden=(64, 64)))
    train, held_out = 2500, slice(2500, None)
    rng = np.random.default_rng(0)
    for _ in range(1500):
        r, s = rng.integers(0, train, 128), rng.integers(0, train, 128)
        states, actions, next_states = (torch.cat([x[r], y[s]]) for x, y in zip(real, sim))
        agent.discriminator_step(Batch({"state": states}, actions, torch.zeros(256), torch.zeros(256),
                                       {"state": next_states}, torch.ones(256), torch.zeros(256),
                                       torch.cat([torch.zeros(128), torch.ones(128)]).long()))
    with torch.no_grad():
        log_ratio_real = log_real_over_sim(*agent.logits(*(x[held_out] for x in real)))
        log_ratio_sim = log_real_over_sim(*agent.logits(*(x[held_out] for x in sim)))
        sa_real, sas_real = agent.logits(*(x[held_out] for x in real))
        sa_sim, sas_sim = agent.logits(*(x[held_out] for x in sim))
    accuracy = 0.5 * (((sa_real + sas_real).argmax(1) == 0).float().mean()
                      + ((sa_sim + sas_sim).argmax(1) == 1).float().mean())
    assert accuracy > 0.8, f"D(s, a, s') accuracy {accuracy:.2f} on held-out transitions"
    # the ratio says the same: held-out real transitions are likelier under "real" than sim ones
    ratio_accuracy = 0.5 * ((log_ratio_real > 0).float().mean() + (log_ratio_sim < 0).float().mean())
    assert ratio_accuracy > 0.8, f"sign of log P_real/P_sim right on {ratio_accuracy:.0%}"


# --- the trainer ---------------------------------------------------------------------------------------
def real_store(path, episodes: int, seed: int = 0):
    """Scripted WidowX reach episodes on the `perturbed` twin: the "real robot" data."""
    env = make_env("widowx", "reach", terminate_on_success=False, dynamics="perturbed")
    with StoreWriter.create(path, env.embodiment) as writer:
        for i in range(episodes):
            expert = make_expert(env, noise=0.1, seed=seed + i)
            record_episode(env, expert, writer, seed=seed + i, source="scripted", on_reset=expert.reset)
    env.close()
    return path


@pytest.fixture(scope="module")
def reach_real(tmp_path_factory):
    return real_store(tmp_path_factory.mktemp("real") / "reach_real.zarr", episodes=4)


def test_h2o_trains_on_half_real_half_sim_batches_and_checkpoints_its_discriminators(tmp_path, reach_real):
    cfg = train_config(tmp_path, "algo=h2o", "task=widowx_reach", f"dataset={reach_real}",
                       "algo.schedule.random_steps=40", "algo.schedule.online_steps=100",
                       "algo.agent.discriminator_hidden=[16,16]", "algo.agent.gap_samples=3")
    trainer = Trainer(cfg, tmp_path / "run")
    sources, update = [], trainer.agent.update
    trainer.agent.update = lambda batches: (sources.extend(b.source.clone() for b in batches), update(batches))[1]
    d_before = {k: v.clone() for k, v in trainer.agent.d_sas.state_dict().items()}
    state = trainer.run()
    random, online = state.phase_log
    assert random == {"phase": "random", "critic_updates": 0, "offline_rows": 0, "online_rows": 0}
    # the random phase commits one 40-step sim episode, so every online step learns
    assert online["critic_updates"] == len(sources) == 60
    assert online["offline_rows"] == online["online_rows"] == 60 * 8
    assert all((s == 0).sum() == 8 and (s == 1).sum() == 8 for s in sources)
    agent = trainer.agent
    assert agent.real_count == 60 * 8
    assert any(not torch.equal(v, d_before[k]) for k, v in agent.d_sas.state_dict().items())
    trainer.close()
    fresh = Trainer(cfg, tmp_path / "run2")
    load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"), fresh.agent, fresh.agent.optimizers)
    for name in ("d_sa.net.0.weight", "d_sas.net.2.bias", "real_sum_sq", "real_count"):
        assert torch.equal(fresh.agent.state_dict()[name], agent.state_dict()[name]), name
    assert fresh.agent.optimizers["discriminator"].state_dict()["state"], "the discriminators' Adam state is saved"
    fresh.close()


@pytest.mark.parametrize("overrides,message", [
    (["algo.schedule.real_ratio=1.0"], "algo.schedule.real_ratio=1.0"),
    (["algo.schedule.real_ratio=0"], "strictly between 0 and 1"),
    (["algo.agent.discriminator_keys=[task_state,front]"], "not there: ['front']"),
    (["algo.agent.ratio_min=0"], "algo.agent.ratio_min=0"),
])
def test_bad_h2o_input_is_refused_with_the_key(tmp_path, reach_real, overrides, message, capsys):
    assert main(["train", "algo=h2o", "task=widowx_reach", f"dataset={reach_real}", f"run_dir={tmp_path / 'run'}",
                 *overrides]) == 2
    assert message in capsys.readouterr().err


# --- learning ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_short_h2o_run_on_the_twin_improves_the_real_evaluation(tmp_path):
    """Sim = nominal twin, real = 10 scripted episodes on the `perturbed` twin; evaluated on `perturbed`."""
    real = real_store(tmp_path / "real.zarr", episodes=10)
    cfg = train_config(tmp_path, "algo=h2o", "task=widowx_reach", f"dataset={real}", "algo.agent.hidden=[64,64]",
                       "algo.batch_size=64", "algo.discount=0.9", "algo.agent.actor_lr=1e-3",
                       "algo.agent.critic_lr=1e-3", "algo.agent.init_temperature=0.05",
                       "algo.agent.discriminator_hidden=[64,64]", "algo.schedule.random_steps=200",
                       "algo.schedule.online_steps=2500")
    trainer = Trainer(cfg, tmp_path / "run")
    real_twin = make_env("widowx", "reach", terminate_on_success=False, dynamics="perturbed")
    policy = lambda obs: trainer.agent.act(obs, deterministic=True)  # noqa: E731
    before = evaluate(policy, real_twin, 5, 100_000)
    trainer.run()
    after = evaluate(policy, real_twin, 5, 100_000)
    trainer.close()
    assert after["return"] > before["return"] + 5.0, (before, after)
