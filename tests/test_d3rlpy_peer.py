"""benchmarks/d3rlpy_peer.py, the offline-RL peer of learning_curves.py: a store recorded the way `robot-rl
collect` records becomes a d3rlpy MDPDataset holding the same episodes, and d3rlpy's IQL trains on it and
is evaluated on the twin (d3rlpy installs --no-deps beside gymnasium 1.4: requirements/no-deps.txt)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from learner_helpers import demo_store
from robot_rl.datasets import TrajectoryReader
from robot_rl.learner.metrics import read_evaluations

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def peer():
    sys.path.insert(0, str(BENCHMARKS))  # d3rlpy_peer imports sb3_peer beside it, as a script does
    try:
        return importlib.import_module("d3rlpy_peer")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return demo_store(tmp_path_factory.mktemp("d3rlpy") / "reach.zarr", episodes=3)


def test_the_dataset_holds_the_stores_episodes(peer, store):
    reader = TrajectoryReader(store)
    dataset = peer.mdp_dataset(store)
    assert len(dataset.episodes) == reader.num_episodes == 3
    # fixed-horizon episodes end in a timeout: no transition out of the last step, as robot_rl's sampler
    assert dataset.transition_count == reader.num_steps - reader.num_episodes
    starts = [0, *reader.episode_ends[:-1]]
    for episode, start, end in zip(dataset.episodes, starts, reader.episode_ends):
        assert not episode.terminated
        np.testing.assert_array_equal(episode.actions, reader.column("action")[start:end])
        np.testing.assert_array_equal(episode.rewards[:, 0], reader.column("reward")[start:end])
        np.testing.assert_array_equal(episode.observations, np.concatenate(
            [reader.column("state")[start:end], reader.column("task_state")[start:end]], axis=1))


def test_iql_trains_and_is_evaluated_on_the_twin(peer, store, tmp_path):
    peer.train(store, "iql", updates=5, task="reach", dynamics="nominal", seed=0, episodes=1, device="cpu",
               run_dir=tmp_path)
    rows = read_evaluations(tmp_path)
    horizon = TrajectoryReader(store).episode_ends[0]  # the twin's fixed episode length, as recorded
    assert [(r["phase"], r["updates"], r["episode_length"]) for r in rows] == [("offline", 5, horizon)]
    assert 0.0 <= rows[0]["success_rate"] <= 1.0
