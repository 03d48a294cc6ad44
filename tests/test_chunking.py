"""Chunk execution (robot_rl.learner.chunking): open loop for k <= h steps and ACT's temporal ensembling,
against hand computations, and the rollouts and evaluation on the real twin using it."""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl.datasets import StoreWriter
from robot_rl.learner.chunking import ChunkExecutor
from robot_rl.learner.rollout import Rollouts, evaluate
from robot_rl.sim import make_env

H, A = 4, 7


def chunk_at(t: int) -> np.ndarray:
    """A recognizable chunk predicted at tick t: entry [i, j] = 100 t + 10 i + j."""
    return (100.0 * t + 10.0 * np.arange(H)[:, None] + np.arange(A)[None]).astype(np.float32)


def drive(executor: ChunkExecutor, ticks: int) -> tuple[list[int], list[np.ndarray]]:
    queried, actions = [], []
    for t in range(ticks):
        if executor.needs_query():
            queried.append(t)
            executor.push(chunk_at(t))
        actions.append(executor.next_action())
    return queried, actions


def test_open_loop_runs_the_whole_chunk_then_queries_again():
    queried, actions = drive(ChunkExecutor(), 10)
    assert queried == [0, 4, 8]
    np.testing.assert_array_equal(actions[5], chunk_at(4)[1])
    np.testing.assert_array_equal(actions[9], chunk_at(8)[1])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_open_loop_k_runs_the_first_k_actions_of_each_chunk(k):
    queried, actions = drive(ChunkExecutor(execute_steps=k), 9)
    assert queried == list(range(0, 9, k))
    for t, action in enumerate(actions):
        start = t - t % k
        np.testing.assert_array_equal(action, chunk_at(start)[t - start])


@pytest.mark.parametrize("m", [0.01, 0.5])
def test_temporal_ensembling_is_the_act_weighted_average_oldest_first(m):
    queried, actions = drive(ChunkExecutor(temporal_ensemble=True, decay=m), 9)
    assert queried == list(range(9)), "temporal ensembling queries every tick"
    for t, action in enumerate(actions):
        starts = [s for s in range(max(0, t - H + 1), t + 1)]           # chunks that reach tick t, oldest first
        predictions = np.stack([chunk_at(s)[t - s] for s in starts])
        w = np.exp(-m * np.arange(len(starts)))
        np.testing.assert_allclose(action, (w[:, None] * predictions).sum(0) / w.sum(), rtol=1e-6)


def test_reset_forgets_pending_actions_and_bad_settings_are_refused():
    ex = ChunkExecutor(execute_steps=3)
    ex.push(chunk_at(0))
    ex.next_action()
    ex.reset()
    assert ex.needs_query()
    with pytest.raises(ValueError, match="execute_steps=5 exceeds the policy's chunk length h=4"):
        ChunkExecutor(execute_steps=5).push(chunk_at(0))
    with pytest.raises(ValueError, match="execute_steps: expected an integer >= 1"):
        ChunkExecutor(execute_steps=0)
    with pytest.raises(ValueError, match="give one of them"):
        ChunkExecutor(execute_steps=2, temporal_ensemble=True)
    with pytest.raises(ValueError, match="decay"):
        ChunkExecutor(temporal_ensemble=True, decay=-1.0)


class CountingPolicy:
    """Zero chunks of h actions; counts its (batched) calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, obs):
        self.calls += 1
        return np.zeros((len(obs["state"]), H, A), np.float32)


def test_evaluation_and_rollouts_on_the_twin_query_as_the_executor_says(tmp_path):
    env = make_env("widowx", "reach", terminate_on_success=False, max_steps=10)
    policy = CountingPolicy()
    evaluate(policy, env, episodes=1, seed=0, executor=lambda: ChunkExecutor(execute_steps=3))
    assert policy.calls == 4, "10 steps, 3 per query"
    policy.calls = 0
    evaluate(policy, env, episodes=1, seed=0, executor=lambda: ChunkExecutor(temporal_ensemble=True))
    assert policy.calls == 10
    with StoreWriter.create(tmp_path / "online.zarr", env.embodiment) as writer:
        rollouts = Rollouts([env], writer, seed=0, executor=lambda: ChunkExecutor(execute_steps=2))
        policy.calls = 0
        finished = [e for _ in range(10) for e in rollouts.step(policy)]
        assert policy.calls == 5 and len(finished) == 1 and finished[0].steps == 10
    env.close()
