"""SAC, CQL and Cal-QL losses and targets against hand computation on tiny fixed inputs.

The critics are built with no hidden layer, so member i is linear and its weights are set by hand:
Q_i(s, a) = w_i * sum(s) + c_i * sum(a) + b_i. The policy's sampling is replaced by a fixed
function of the features (``fake_sample``); every expectation is written out in plain Python.
"""
import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

import robot_rl.algos.cql as cql_module
from robot_rl.algos.batch import Batch, to_batch
from robot_rl.algos.cql import CQL, CQLConfig
from robot_rl.algos.sac import SAC, ObservationShapes, SACConfig
from robot_rl.datasets.samplers import ChunkSampler, MixtureSampler, TransitionSampler
from robot_rl.datasets.source import InMemorySource
from robot_rl.nets import TanhGaussianActor

TOL = dict(rtol=1e-5, atol=1e-5)
STATE = ObservationShapes(state={"s": 2})

# member i: (w_i, c_i, b_i)
ONLINE = [(1.0, 2.0, 0.5), (-0.5, 1.0, 0.0), (2.0, -1.0, -0.3)]
TARGET = [(0.8, 1.5, 0.2), (-3.0, 0.5, -1.0), (1.2, -0.7, 0.1)]


# --- fixtures and hand references -----------------------------------------------------------------
def set_linear_critic(critic, members):
    head, f = critic.net.head, critic.net.head.weight.shape[1]
    action_dim = f - STATE.state["s"]
    with torch.no_grad():
        for i, (w, c, b) in enumerate(members):
            head.weight[i, :, 0] = torch.tensor([w] * (f - action_dim) + [c] * action_dim)
            head.bias[i] = b


def make_agent(cls=SAC, action_dim=1, **config):
    config = {"hidden": (), "ensemble_size": 3, "target_subset": 2, **config}
    config_class = CQLConfig if cls is CQL else SACConfig
    agent = cls(STATE, action_dim, config_class(**config))
    set_linear_critic(agent.critic, ONLINE[: agent.config.ensemble_size])
    set_linear_critic(agent.target_critic, TARGET[: agent.config.ensemble_size])
    return agent


def q_ref(member, s, a):
    w, c, b = member
    return w * sum(s) + c * sum(a) + b


def fake_sample(features):
    """Deterministic stand-in for ``actor.sample``; the n copies CQL draws per state get different actions."""
    x = features.sum(-1)
    if features.dim() == 3:
        x = x + 0.25 * torch.arange(features.shape[0], dtype=x.dtype).unsqueeze(-1)
    dims = features.new_tensor([0.0, 0.2])[: fake_sample.action_dim]
    return torch.tanh(0.5 * x.unsqueeze(-1) + dims), -0.3 * x + 0.1


fake_sample.action_dim = 1


def sample_ref(s, copy=0, action_dim=1):
    x = sum(s) + 0.25 * copy
    return [math.tanh(0.5 * x + 0.2 * j) for j in range(action_dim)], -0.3 * x + 0.1


def patch_policy(monkeypatch, agent, members=(0, 2)):
    monkeypatch.setattr(fake_sample, "action_dim", agent.action_dim)
    monkeypatch.setattr(agent.actor, "sample", fake_sample)
    monkeypatch.setattr(agent.critic, "random_members", lambda k: torch.tensor(members[:k]))


def make_batch(obs, next_obs, action, reward, discount, valid=None, mc_return=None):
    n, f32 = len(action), torch.float32
    return Batch(obs={"s": torch.tensor(obs, dtype=f32)}, action=torch.tensor(action, dtype=f32),
                 reward=torch.tensor(reward, dtype=f32), discount=torch.tensor(discount, dtype=f32),
                 next_obs={"s": torch.tensor(next_obs, dtype=f32)},
                 valid=torch.tensor([1.0] * n if valid is None else valid, dtype=f32),
                 mc_return=torch.tensor([0.0] * n if mc_return is None else mc_return, dtype=f32),
                 source=torch.zeros(n, dtype=torch.int64))


OBS = [[0.1, -0.2], [0.5, 0.3], [-0.4, 0.2]]
NEXT_OBS = [[0.2, 0.0], [-0.3, 0.6], [0.1, 0.1]]


def td_target_ref(batch_lists, alpha, backup_entropy, members=(0, 2), action_dim=1):
    _, next_obs, _, reward, discount = batch_lists
    out = []
    for s2, r, d in zip(next_obs, reward, discount):
        a2, lp = sample_ref(s2, action_dim=action_dim)
        v = min(q_ref(TARGET[i], s2, a2) for i in members)
        if backup_entropy:
            v -= alpha * lp
        out.append(r + d * v)
    return out


def td_loss_ref(batch_lists, valid, alpha, ensemble=3, members=(0, 2), action_dim=1, backup_entropy=True):
    obs, _, action, _, _ = batch_lists
    y = td_target_ref(batch_lists, alpha, backup_entropy, members, action_dim)
    per_member = []
    for m in ONLINE[:ensemble]:
        errs = [(q_ref(m, s, a) - t) ** 2 for s, a, t, v in zip(obs, action, y, valid) if v]
        per_member.append(sum(errs) / len(errs))
    return sum(per_member) / len(per_member)


def logsumexp_ref(xs, t):
    top = max(xs)
    return top + t * math.log(sum(math.exp((x - top) / t) for x in xs))


def gap_ref(obs, next_obs, action, valid, uniform, n, t=1.0, mc_return=None, ensemble=2,
            clamp_random=False):
    """``uniform`` [n][B][A] in [0, 1): the patched torch.rand."""
    action_dim = len(action[0])
    lower = [-math.inf] * len(obs) if mc_return is None else mc_return
    per_member = []
    for m in ONLINE[:ensemble]:
        rows = []
        for j, (s, s2, a_data) in enumerate(zip(obs, next_obs, action)):
            if not valid[j]:
                continue
            terms = []
            for k in range(n):
                q = q_ref(m, s, [2 * u - 1 for u in uniform[k][j]])
                terms.append((max(q, lower[j]) if clamp_random else q) + action_dim * math.log(2))
            for state in (s, s2):
                for k in range(n):
                    a, lp = sample_ref(state, k, action_dim)
                    terms.append(max(q_ref(m, s, a), lower[j]) - lp)
            rows.append(logsumexp_ref(terms, t) - q_ref(m, s, a_data))
        per_member.append(sum(rows) / len(rows))
    return sum(per_member) / len(per_member)


def as_lists(batch):
    return (batch.obs["s"].tolist(), batch.next_obs["s"].tolist(), batch.action.tolist(),
            batch.reward.tolist(), batch.discount.tolist())


# --- SAC ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backup_entropy", [True, False])
def test_td_target_is_reward_plus_discounted_min_over_chosen_target_members(monkeypatch, backup_entropy):
    agent = make_agent(backup_entropy=backup_entropy, init_temperature=0.5)
    patch_policy(monkeypatch, agent, members=(0, 2))
    # row 1 is terminal: its target is the reward alone
    batch = make_batch(OBS, NEXT_OBS, [[0.3], [-0.6], [0.9]], [1.0, -2.0, 0.5], [0.99, 0.0, 0.9801])
    expected = td_target_ref(as_lists(batch), 0.5, backup_entropy, members=(0, 2))
    np.testing.assert_allclose(agent.td_target(batch).numpy(), expected, **TOL)
    assert expected[1] == -2.0


def test_td_target_min_ignores_members_outside_the_subset(monkeypatch):
    agent = make_agent()
    patch_policy(monkeypatch, agent, members=(0, 2))
    batch = make_batch(OBS, NEXT_OBS, [[0.3], [-0.6], [0.9]], [0.0] * 3, [1.0] * 3)
    all_three = td_target_ref(as_lists(batch), 1.0, True, members=(0, 1, 2))
    got = agent.td_target(batch).numpy()
    # target member 1 is the smallest on every row, so using it would change the target
    assert not np.allclose(got, all_three)
    np.testing.assert_allclose(got, td_target_ref(as_lists(batch), 1.0, True, members=(0, 2)), **TOL)


def test_critic_loss_is_mean_over_members_of_mean_squared_td_error_on_valid_rows(monkeypatch):
    agent = make_agent(init_temperature=0.7)
    patch_policy(monkeypatch, agent)
    valid = [1.0, 0.0, 1.0]
    # the invalid row's huge reward must not reach the loss
    batch = make_batch(OBS, NEXT_OBS, [[0.3], [-0.6], [0.9]], [1.0, 1000.0, 0.5], [0.99, 0.99, 0.0], valid)
    loss, info = agent.critic_loss(batch)
    expected = td_loss_ref(as_lists(batch), valid, 0.7)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert info["critic_loss"] == pytest.approx(expected, rel=1e-5)


def test_actor_loss_is_mean_of_alpha_log_pi_minus_member_mean_q(monkeypatch):
    agent = make_agent(action_dim=2, init_temperature=0.5)
    actions, log_probs = [[0.2, -0.4], [0.9, 0.1], [-0.7, -0.3]], [-1.5, 0.3, 2.0]
    monkeypatch.setattr(agent.actor, "sample",
                        lambda f: (torch.tensor(actions), torch.tensor(log_probs)))
    loss, log_prob = agent.actor_loss(torch.tensor(OBS))
    expected = sum(0.5 * lp - sum(q_ref(m, s, a) for m in ONLINE) / 3
                   for s, a, lp in zip(OBS, actions, log_probs)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert log_prob.tolist() == pytest.approx(log_probs)


def test_pre_tanh_regularizer_adds_half_the_mean_square_of_mu_and_log_std(monkeypatch):
    agent = make_agent(action_dim=2, init_temperature=0.5, pre_tanh_reg=0.1)
    actions, log_probs = [[0.2, -0.4], [0.9, 0.1], [-0.7, -0.3]], [-1.5, 0.3, 2.0]
    mu, log_std = [[1.0, -2.0], [3.0, 0.0], [0.5, 4.0]], [[-1.0, 0.0], [0.5, -2.0], [1.0, 1.0]]
    monkeypatch.setattr(agent.actor, "sample", lambda f: (torch.tensor(actions), torch.tensor(log_probs)))
    monkeypatch.setattr(agent.actor, "forward", lambda f: (torch.tensor(mu), torch.tensor(log_std)))
    loss, _ = agent.actor_loss(torch.tensor(OBS))
    plain = sum(0.5 * lp - sum(q_ref(m, s, a) for m in ONLINE) / 3
                for s, a, lp in zip(OBS, actions, log_probs)) / 3
    squares = [x * x for row in mu + log_std for x in row]
    assert loss.item() == pytest.approx(plain + 0.1 * 0.5 * sum(squares) / 6, rel=1e-5)


def test_actor_loss_trains_the_actor_but_not_the_temperature():
    torch.manual_seed(0)
    agent = make_agent(action_dim=2, hidden=(8,))
    loss, _ = agent.actor_loss(torch.tensor(OBS))
    loss.backward()
    assert agent.log_temperature.grad is None, "actor loss must use a detached alpha"
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


def test_temperature_loss_is_alpha_times_entropy_minus_target():
    agent = make_agent(action_dim=2, init_temperature=0.3)  # target entropy -|A| = -2
    log_prob = torch.tensor([1.0, -4.0, 0.5], requires_grad=True)
    loss = agent.temperature_loss(log_prob)
    assert loss.item() == pytest.approx(0.3 * (-(1.0 - 4.0 + 0.5) / 3 + 2.0), rel=1e-6)
    loss.backward()
    assert log_prob.grad is None, "the temperature loss must not train the actor"


@pytest.mark.parametrize("log_prob, rises", [([2.0, 3.0], True), ([-3.0, -4.0], False)])
def test_temperature_rises_when_entropy_is_below_target(log_prob, rises):
    agent = make_agent(init_temperature=1.0)  # target entropy -1; entropies -2.5 and 3.5
    before = agent.temperature.item()
    opt = agent.optimizers["temperature"]
    opt.zero_grad()
    agent.temperature_loss(torch.tensor(log_prob)).backward()
    opt.step()
    assert (agent.temperature.item() > before) == rises


def test_target_entropy_defaults_to_minus_scale_times_flat_action_size():
    assert make_agent(action_dim=2, chunk=3).target_entropy == -6
    assert make_agent(action_dim=2, chunk=3, target_entropy_scale=0.5).target_entropy == -3
    assert make_agent(action_dim=2, target_entropy=-0.5).target_entropy == -0.5


def test_polyak_moves_critic_and_encoder_targets_by_tau():
    torch.manual_seed(0)
    shapes = ObservationShapes(state={"s": 2}, cameras={"cam": (16, 16, 3)})
    agent = SAC(shapes, 1, SACConfig(hidden=(4,), ensemble_size=2, feature_dim=4, tau=0.1))
    with torch.no_grad():
        for p in [*agent.critic.parameters(), *agent.encoder.parameters()]:
            p.add_(torch.randn_like(p))
    pairs = [(p, tp) for net, target in ((agent.critic, agent.target_critic), (agent.encoder, agent.target_encoder))
             for p, tp in zip(net.parameters(), target.parameters())]
    assert len(pairs) > 10
    expected = [(0.9 * tp + 0.1 * p).detach().clone() for p, tp in pairs]
    agent.polyak_update()
    for (_, tp), e in zip(pairs, expected):
        torch.testing.assert_close(tp, e)


def test_update_runs_one_critic_step_per_batch_and_one_actor_step_on_the_last(monkeypatch):
    agent = make_agent()
    calls = []
    monkeypatch.setattr(agent, "critic_step", lambda b: calls.append(("critic", b)) or {})
    monkeypatch.setattr(agent, "actor_step", lambda b: calls.append(("actor", b)) or {})
    agent.update(["b0", "b1", "b2"])
    assert calls == [("critic", "b0"), ("critic", "b1"), ("critic", "b2"), ("actor", "b2")]


# --- actor ----------------------------------------------------------------------------------------
def test_tanh_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, (8,))
    features = torch.randn(5, 3)
    mean, log_std = actor(features)
    torch.manual_seed(1)
    action, log_prob = actor.sample(features)
    torch.manual_seed(1)
    pre_tanh = mean + log_std.exp() * torch.randn_like(mean)  # the same noise draw
    tanh = TanhTransform(cache_size=1)
    squashed = tanh(pre_tanh)  # cached, so log_prob inverts it exactly instead of by atanh
    dist = TransformedDistribution(Independent(Normal(mean, log_std.exp()), 1), [tanh])
    torch.testing.assert_close(action, squashed)
    torch.testing.assert_close(log_prob, dist.log_prob(squashed))


def test_tanh_gaussian_log_prob_of_given_actions_matches_torch_distributions():
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, (8,))
    features = torch.randn(4, 3)
    mean, log_std = actor(features)
    action = torch.tensor([[0.3, -0.9], [0.0, 0.5], [-0.99, 0.99], [0.7, -0.1]])
    dist = TransformedDistribution(Independent(Normal(mean, log_std.exp()), 1), [TanhTransform()])
    torch.testing.assert_close(actor.log_prob(features, action), dist.log_prob(action))
    # the data's actions at the edges (a gripper at exactly +-1): finite, and as likely as 1 - 1e-4
    edge = actor.log_prob(features, torch.tensor([[1.0, -1.0]] * 4))
    torch.testing.assert_close(edge, actor.log_prob(features, torch.tensor([[1 - 1e-4, -1 + 1e-4]] * 4)))
    assert torch.isfinite(edge).all()


def test_tanh_gaussian_log_prob_is_accurate_far_into_saturation():
    actor = TanhGaussianActor(1, 2, ())
    with torch.no_grad():
        actor.net[0].weight.zero_()
        actor.net[0].bias.copy_(torch.tensor([10.0, -12.0, -3.0, -3.0]))  # means 10, -12; log std -3
    torch.manual_seed(0)
    _, log_prob = actor.sample(torch.zeros(4, 1))
    torch.manual_seed(0)
    noise = torch.randn(4, 2).double()
    u = torch.tensor([10.0, -12.0], dtype=torch.float64) + math.exp(-3.0) * noise
    # float64 is exact enough here; float32 1 - tanh(u)^2 would be 0 and the log -inf
    expected = (Normal(0.0, 1.0).log_prob(noise) + 3.0 - torch.log(1 - torch.tanh(u) ** 2)).sum(-1)
    assert torch.isfinite(log_prob).all()
    np.testing.assert_allclose(log_prob.detach().numpy(), expected.numpy(), rtol=1e-5)


# --- CQL / Cal-QL ---------------------------------------------------------------------------------
N_ACTIONS = 3
CQL_ACTION = [[0.3, -0.2], [-0.6, 0.8], [0.9, 0.1]]
UNIFORM = np.array([[[0.1, 0.9], [0.5, 0.5], [0.0, 0.3]],
                    [[0.7, 0.2], [0.95, 0.8], [0.4, 0.6]],
                    [[0.25, 0.05], [0.6, 0.35], [0.85, 0.15]]])


def make_cql(monkeypatch, **config):
    agent = make_agent(CQL, action_dim=2, ensemble_size=2, n_actions=N_ACTIONS, **config)
    patch_policy(monkeypatch, agent, members=(1, 0))

    def fake_rand(*shape):
        assert shape == UNIFORM.shape, f"random actions: expected shape {UNIFORM.shape}, found {shape}"
        return torch.tensor(UNIFORM, dtype=torch.float32)

    monkeypatch.setattr(cql_module.torch, "rand", fake_rand)
    return agent


def cql_batch(valid=(1.0, 1.0, 1.0), mc_return=None):
    return make_batch(OBS, NEXT_OBS, CQL_ACTION, [1.0, 0.0, -1.0], [0.99, 0.99, 0.0], list(valid), mc_return)


@pytest.mark.parametrize("t", [1.0, 0.5, 3.0])
def test_conservative_gap_matches_hand_logsumexp(monkeypatch, t):
    agent = make_cql(monkeypatch, cql_temperature=t)
    valid = [1.0, 0.0, 1.0]
    gap = agent.conservative_gap(cql_batch(valid))
    expected = gap_ref(OBS, NEXT_OBS, CQL_ACTION, valid, UNIFORM, N_ACTIONS, t)
    assert gap.item() == pytest.approx(expected, rel=1e-5)


def test_calql_raises_policy_action_q_to_mc_return_but_not_random_action_q(monkeypatch):
    mc = [4.0, -50.0, 3.0]  # rows 0 and 2 above every Q on offer, row 1 below
    agent = make_cql(monkeypatch, calql=True)
    gap = agent.conservative_gap(cql_batch(mc_return=mc)).item()
    expected = gap_ref(OBS, NEXT_OBS, CQL_ACTION, [1, 1, 1], UNIFORM, N_ACTIONS, mc_return=mc)
    plain = gap_ref(OBS, NEXT_OBS, CQL_ACTION, [1, 1, 1], UNIFORM, N_ACTIONS)
    all_clamped = gap_ref(OBS, NEXT_OBS, CQL_ACTION, [1, 1, 1], UNIFORM, N_ACTIONS, mc_return=mc,
                          clamp_random=True)
    assert abs(expected - plain) > 0.1 and abs(expected - all_clamped) > 0.1
    assert gap == pytest.approx(expected, rel=1e-5)


def test_calql_with_low_mc_return_equals_plain_cql(monkeypatch):
    mc = [-50.0, -60.0, -70.0]
    gap = make_cql(monkeypatch, calql=True).conservative_gap(cql_batch(mc_return=mc)).item()
    plain = gap_ref(OBS, NEXT_OBS, CQL_ACTION, [1, 1, 1], UNIFORM, N_ACTIONS)
    assert gap == pytest.approx(plain, rel=1e-5)


def test_cql_fixed_alpha_loss_is_td_loss_plus_alpha_times_gap(monkeypatch):
    agent = make_cql(monkeypatch, cql_alpha=2.5, init_temperature=0.4)
    valid = [1.0, 1.0, 0.0]
    batch = cql_batch(valid)
    loss, info = agent.critic_loss(batch)
    td = td_loss_ref(as_lists(batch), valid, 0.4, ensemble=2, members=(1, 0), action_dim=2,
                     backup_entropy=False)  # CQL never backs up the entropy
    gap = gap_ref(OBS, NEXT_OBS, CQL_ACTION, valid, UNIFORM, N_ACTIONS)
    assert info["td_loss"] == pytest.approx(td, rel=1e-5)
    assert info["cql_gap"] == pytest.approx(gap, rel=1e-5)
    assert loss.item() == pytest.approx(td + 2.5 * gap, rel=1e-5)


@pytest.mark.parametrize("offset, rises", [(-1.0, True), (1.0, False)])
def test_cql_lagrange_alpha_rises_when_gap_exceeds_target(monkeypatch, offset, rises):
    gap = gap_ref(OBS, NEXT_OBS, CQL_ACTION, [1, 1, 1], UNIFORM, N_ACTIONS)
    target = gap + offset
    agent = make_cql(monkeypatch, lagrange=True, cql_alpha=2.0, target_gap=target, critic_lr=0.01)
    loss, info = agent.critic_loss(cql_batch())
    td = td_loss_ref(as_lists(cql_batch()), [1, 1, 1], 1.0, ensemble=2, members=(1, 0), action_dim=2,
                     backup_entropy=False)
    assert loss.item() == pytest.approx(td + 2.0 * (gap - target), rel=1e-5)
    step = agent.log_cql_alpha.item() - math.log(2.0)
    assert (step > 0) == rises
    assert abs(step) == pytest.approx(0.01, rel=1e-3)  # Adam's first step is lr in size


# --- batches from the samplers --------------------------------------------------------------------
def make_source():
    """Two episodes: 0..4 terminated, 5..9 truncated (so chunks running off it are not TD-valid)."""
    n = 10
    data = {
        "action": np.arange(2 * n, dtype=np.float32).reshape(n, 2),
        "reward": np.linspace(-1, 1, n, dtype=np.float32),
        "terminated": np.isin(np.arange(n), [4]),
        "truncated": np.isin(np.arange(n), [9]),
        "timestamp": np.arange(n) * 0.1,
        "state": np.arange(3 * n, dtype=np.float32).reshape(n, 3),
        "image": np.zeros((n, 2, 2, 3), dtype=np.uint8),
    }
    return InMemorySource(np.array([5, 10]), data, ("state", "image"))


def assert_common_fields(batch, sample):
    assert set(batch.obs) == set(batch.next_obs) == {"state", "image"}
    assert batch.obs["image"].dtype == torch.uint8
    np.testing.assert_array_equal(batch.obs["state"].numpy(), sample["obs"]["state"])
    np.testing.assert_array_equal(batch.next_obs["state"].numpy(), sample["next_obs"]["state"])
    np.testing.assert_array_equal(batch.mc_return.numpy(), sample["mc_return"])
    for name in ("action", "reward", "discount", "valid", "mc_return"):
        assert getattr(batch, name).dtype == torch.float32, name


def test_to_batch_from_transition_sample():
    sample = TransitionSampler(make_source(), 16, discount=0.9, seed=0).sample()
    batch = to_batch(sample)
    assert_common_fields(batch, sample)
    np.testing.assert_array_equal(batch.action.numpy(), sample["action"])
    np.testing.assert_array_equal(batch.reward.numpy(), sample["reward"])
    np.testing.assert_array_equal(batch.discount.numpy(), sample["discount"])
    assert batch.valid.tolist() == [1.0] * 16
    assert batch.source.tolist() == [0] * 16


def test_to_batch_from_chunk_sample_flattens_chunks_and_maps_chunk_targets():
    sample = ChunkSampler(make_source(), 32, discount=0.9, horizon=3, seed=0).sample()
    assert not sample["td_valid"].all() and sample["td_valid"].any()
    batch = to_batch(sample)
    assert_common_fields(batch, sample)
    assert batch.action.shape == (32, 6)
    for b in range(32):
        for k in range(3):
            assert batch.action[b, 2 * k: 2 * k + 2].tolist() == sample["action_chunk"][b, k].tolist()
    np.testing.assert_array_equal(batch.reward.numpy(), sample["chunk_reward"])
    np.testing.assert_array_equal(batch.discount.numpy(), sample["bootstrap_discount"])
    np.testing.assert_array_equal(batch.valid.numpy(), sample["td_valid"].astype(np.float32))


def test_to_batch_keeps_mixture_source():
    source = make_source()
    mixture = MixtureSampler([(TransitionSampler(source, 4, seed=0), 0.25),
                              (TransitionSampler(source, 4, seed=1), 0.75)], 8)
    assert to_batch(mixture.sample()).source.tolist() == [0, 0, 1, 1, 1, 1, 1, 1]


def test_cql_backs_up_entropy_only_without_the_penalty(monkeypatch):
    agent = make_cql(monkeypatch, init_temperature=0.4)
    batch = cql_batch([1.0, 1.0, 1.0])
    assert agent.backup_entropy is False
    conservative = agent.td_target(batch)
    agent.conservative = False  # WSRL's online SAC phase
    assert agent.backup_entropy is True
    expected = td_target_ref(as_lists(batch), 0.4, True, members=(1, 0), action_dim=2)
    assert agent.td_target(batch).tolist() == pytest.approx(expected, rel=1e-5)
    assert not torch.allclose(conservative, agent.td_target(batch))


def test_cql_bc_weight_adds_the_mse_of_the_policy_mode_to_the_data_actions_only_while_conservative(monkeypatch):
    agent = make_agent(CQL, action_dim=2, init_temperature=0.5, bc_weight=2.0)
    actions, log_probs = [[0.2, -0.4], [0.9, 0.1], [-0.7, -0.3]], [-1.5, 0.3, 2.0]
    mode = [[0.0, 0.5], [0.5, 0.5], [-1.0, 0.0]]
    monkeypatch.setattr(agent.actor, "sample", lambda f: (torch.tensor(actions), torch.tensor(log_probs)))
    monkeypatch.setattr(agent.actor, "mode", lambda f: torch.tensor(mode))
    batch = cql_batch()
    plain = sum(0.5 * lp - sum(q_ref(m, s, a) for m in ONLINE) / 3
                for s, a, lp in zip(OBS, actions, log_probs)) / 3
    mse = sum((p - d) ** 2 for row, data in zip(mode, CQL_ACTION) for p, d in zip(row, data)) / 6
    loss, _ = agent.actor_loss(torch.tensor(OBS), batch)
    assert loss.item() == pytest.approx(plain + 2.0 * mse, rel=1e-5)
    agent.conservative = False  # WSRL's online phase: plain SAC
    assert agent.actor_loss(torch.tensor(OBS), batch)[0].item() == pytest.approx(plain, rel=1e-5)


def test_cql_awr_weights_the_data_actions_log_likelihood_by_exp_beta_advantage_while_conservative(monkeypatch):
    """AWR extraction: -mean(min(exp(beta (Q(s, a_data) - Q(s, a_pi))), max) log pi(a_data|s)); online: SAC."""
    agent = make_agent(CQL, action_dim=2, init_temperature=0.5, actor_extraction="awr",
                       awr_inverse_temperature=2.0, awr_max_weight=3.0)
    actions, log_probs = [[0.2, -0.4], [0.9, 0.1], [-0.7, -0.3]], [-1.5, 0.3, 2.0]
    data_log_probs = [-0.5, 1.0, -2.0]
    monkeypatch.setattr(agent.actor, "sample", lambda f: (torch.tensor(actions), torch.tensor(log_probs)))
    monkeypatch.setattr(agent.actor, "log_prob", lambda f, a: torch.tensor(data_log_probs))
    batch = cql_batch(valid=(1.0, 0.0, 1.0))
    q = lambda s, a: sum(q_ref(m, s, a) for m in ONLINE) / 3  # noqa: E731
    weights = [min(math.exp(2.0 * (q(s, d) - q(s, a))), 3.0) for s, d, a in zip(OBS, CQL_ACTION, actions)]
    assert min(weights) < 3.0 and max(weights) == 3.0, "the case should exercise both sides of the clip"
    expected = -(weights[0] * data_log_probs[0] + weights[2] * data_log_probs[2]) / 2  # row 1 is not valid
    loss, log_prob = agent.actor_loss(torch.tensor(OBS), batch)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(log_prob, torch.tensor(log_probs))  # the temperature still reads the policy's
    agent.conservative = False
    plain = sum(0.5 * lp - q(s, a) for s, a, lp in zip(OBS, actions, log_probs)) / 3
    assert agent.actor_loss(torch.tensor(OBS), batch)[0].item() == pytest.approx(plain, rel=1e-5)


def test_cql_weighted_bc_weights_the_modes_squared_error_and_adds_the_unweighted_log_likelihood(monkeypatch):
    """weighted_bc: mean(w * |mode - a_data|^2 - log pi(a_data|s)) over valid rows, w as AWR's, the
    likelihood through the spread only."""
    agent = make_agent(CQL, action_dim=2, init_temperature=0.5, actor_extraction="weighted_bc",
                       awr_inverse_temperature=2.0, awr_max_weight=3.0)
    actions, log_probs, modes = [[0.2, -0.4], [0.9, 0.1], [-0.7, -0.3]], [-1.5, 0.3, 2.0], [[0.1, 0.0], [0.5, 0.5], [0.3, -0.2]]
    data_log_probs = [-0.5, 1.0, -2.0]
    monkeypatch.setattr(agent.actor, "sample", lambda f: (torch.tensor(actions), torch.tensor(log_probs)))
    monkeypatch.setattr(agent.actor, "spread_log_prob", lambda f, a: torch.tensor(data_log_probs))
    monkeypatch.setattr(agent.actor, "mode", lambda f: torch.tensor(modes))
    batch = cql_batch(valid=(1.0, 0.0, 1.0))
    q = lambda s, a: sum(q_ref(m, s, a) for m in ONLINE) / 3  # noqa: E731
    weights = [min(math.exp(2.0 * (q(s, d) - q(s, a))), 3.0) for s, d, a in zip(OBS, CQL_ACTION, actions)]
    squared = [sum((m - d) ** 2 for m, d in zip(mode, data)) for mode, data in zip(modes, CQL_ACTION)]
    expected = sum(weights[i] * squared[i] - data_log_probs[i] for i in (0, 2)) / 2  # row 1 is not valid
    loss, log_prob = agent.actor_loss(torch.tensor(OBS), batch)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(log_prob, torch.tensor(log_probs))


def test_spread_log_prob_is_the_log_likelihood_but_trains_only_the_log_std_outputs():
    actor = TanhGaussianActor(3, 2, (8,))
    features, action = torch.randn(5, 3), torch.tensor([[1.0, -0.2]] * 5)  # a saturated gripper-like +1
    torch.testing.assert_close(actor.spread_log_prob(features, action), actor.log_prob(features, action))
    actor.spread_log_prob(features, action).sum().backward()
    hidden, output = actor.net[0], actor.net[-1]
    assert hidden.weight.grad is None and hidden.bias.grad is None
    assert torch.all(output.weight.grad[:2] == 0) and torch.all(output.bias.grad[:2] == 0)    # mean rows
    assert torch.all(output.weight.grad[2:].abs().sum(1) > 0)                                   # log-std rows


def test_cql_refuses_an_unknown_actor_extraction():
    with pytest.raises(ValueError, match="actor_extraction='iql'.*expected one of"):
        make_agent(CQL, action_dim=2, actor_extraction="iql")


def test_cql_normalize_q_in_actor_divides_the_soft_q_term_by_the_mean_absolute_q(monkeypatch):
    """TD3+BC's weighting: (alpha log pi - Q) / mean|Q| + bc_weight * MSE, offline only."""
    agent = make_agent(CQL, action_dim=2, init_temperature=0.5, bc_weight=0.4, normalize_q_in_actor=True)
    actions, log_probs = [[0.2, -0.4], [0.9, 0.1], [-0.7, -0.3]], [-1.5, 0.3, 2.0]
    mode = [[0.0, 0.5], [0.5, 0.5], [-1.0, 0.0]]
    monkeypatch.setattr(agent.actor, "sample", lambda f: (torch.tensor(actions), torch.tensor(log_probs)))
    monkeypatch.setattr(agent.actor, "mode", lambda f: torch.tensor(mode))
    batch = cql_batch()
    q = [sum(q_ref(m, s, a) for m in ONLINE) / 3 for s, a in zip(OBS, actions)]
    soft_q = sum(0.5 * lp - qi for lp, qi in zip(log_probs, q)) / 3
    mse = sum((p - d) ** 2 for row, data in zip(mode, CQL_ACTION) for p, d in zip(row, data)) / 6
    loss, _ = agent.actor_loss(torch.tensor(OBS), batch)
    assert loss.item() == pytest.approx(soft_q / (sum(abs(qi) for qi in q) / 3) + 0.4 * mse, rel=1e-5)
    agent.conservative = False  # online: plain SAC, unscaled
    assert agent.actor_loss(torch.tensor(OBS), batch)[0].item() == pytest.approx(soft_q, rel=1e-5)
