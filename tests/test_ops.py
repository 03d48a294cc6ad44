"""The tensor functions the algorithms share (robot_rl.algos.ops), on cases small enough to check by hand."""
import math

import pytest
import torch
from torch import nn

from robot_rl.algos.ops import conservative_gap, masked_mean, optimizer_step, polyak_update, q_per_action
from robot_rl.nets import CriticEnsemble


def test_masked_mean_ignores_padded_rows_whatever_they_hold():
    values = torch.tensor([[1.0, 3.0, 1e6], [5.0, 7.0, -1e6]])  # [E=2, B=3], row 2 is padding
    assert masked_mean(values, torch.tensor([1.0, 1.0, 0.0])).item() == pytest.approx(4.0)


def test_masked_mean_of_an_elementwise_mask_and_of_no_valid_rows():
    values = torch.tensor([[1.0, 2.0], [3.0, 100.0]])
    assert masked_mean(values, torch.tensor([[1.0, 1.0], [1.0, 0.0]])).item() == pytest.approx(2.0)
    assert masked_mean(values, torch.zeros(2)).item() == 0.0


def test_polyak_at_tau_one_copies_and_at_zero_keeps():
    torch.manual_seed(0)
    net, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    polyak_update([(net, target)], 0.0)
    for p, b in zip(target.parameters(), before):
        torch.testing.assert_close(p, b)
    polyak_update([(net, target)], 1.0)
    for p, tp in zip(net.parameters(), target.parameters()):
        torch.testing.assert_close(tp, p)


def test_optimizer_step_clears_stale_gradients_first():
    w = nn.Parameter(torch.tensor(1.0))
    w.grad = torch.tensor(100.0)  # left over from an earlier backward
    optimizer_step(torch.optim.SGD([w], lr=0.5), 3.0 * w)
    assert w.item() == pytest.approx(1.0 - 0.5 * 3.0)


def test_q_per_action_matches_scoring_each_action_alone():
    torch.manual_seed(0)
    critic = CriticEnsemble(4, 2, ensemble_size=3, hidden=(8,), layer_norm=True)
    features, actions = torch.randn(5, 4), torch.rand(6, 5, 2) * 2 - 1
    q = q_per_action(critic, features, actions)
    assert q.shape == (3, 6, 5)
    for i in range(6):
        torch.testing.assert_close(q[:, i], critic(features, actions[i]))


@pytest.mark.parametrize("t", [1.0, 0.5])
def test_conservative_gap_on_a_known_case(t):
    # one member, two sampled actions scored 0 and log 3 (t = 1: logsumexp = log 4), Q(s, a_data) = log 2;
    # the second row is padding with values that would dominate the mean if counted
    scored = torch.tensor([[[0.0, 50.0], [math.log(3.0), 60.0]]])    # [E=1, n=2, B=2]
    q_data = torch.tensor([[math.log(2.0), -40.0]])
    expected = t * math.log(math.exp(0.0) + math.exp(math.log(3.0) / t)) - math.log(2.0)
    gap = conservative_gap(scored, q_data, torch.tensor([1.0, 0.0]), t)
    assert gap.item() == pytest.approx(expected, rel=1e-6)
    if t == 1.0:
        assert gap.item() == pytest.approx(math.log(2.0), rel=1e-6)


def test_every_algorithm_agent_shares_the_base_and_phases_reach_it_through_begin_phase():
    from robot_rl.algos import ALGORITHMS
    from robot_rl.algos.agent import LearningAgent
    from robot_rl.algos.cql import CQL, CQLConfig
    from robot_rl.algos.plan import Phase
    from robot_rl.algos.sac import ObservationShapes

    assert all(issubclass(algo.Agent, LearningAgent) for algo in ALGORITHMS.values())
    assert [name for name, algo in ALGORITHMS.items() if algo.Agent.reads_instructions] == ["corft"]
    agent = CQL(ObservationShapes(state={"s": 2}), 1, CQLConfig(hidden=(4,)))
    agent.begin_phase(Phase("online", env_steps=10, conservative=False))
    assert agent.conservative is False and agent.backup_entropy
