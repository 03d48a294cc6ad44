"""The operator's steps on the demonstration side of the batches (robot_rl.learner.interventions), for
RLPD's 50/50 mixture and WSRL's online-only phase: real stores on disk (an offline demo store from the
twin's expert, an online store whose rows carry the intervention flag), the learner's real Replay."""
from __future__ import annotations

import numpy as np
import pytest

from learner_helpers import demo_store
from robot_rl.datasets import StoreWriter, TrajectoryReader
from robot_rl.learner.interventions import demo_side, human_rows
from robot_rl.learner.replay import Replay

HUMAN = [[False] * 4 + [True] * 3 + [False] * 3, [False] * 10, [True, True] + [False] * 8]


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    return demo_store(tmp_path_factory.mktemp("hil") / "demos.zarr", episodes=2)


def online_store(path, offline_path, flags=HUMAN):
    """Episodes shaped as the demos' rows, each row's intervention flag from ``flags``."""
    spec = TrajectoryReader(offline_path).spec
    rng = np.random.default_rng(0)
    with StoreWriter.create(path, spec.with_optional("intervention")) as writer:
        for episode_flags in flags:
            episode = writer.new_episode()
            for human in episode_flags:
                row = {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in spec.keys().items()}
                row.update(terminated=False, truncated=False, intervention=human)
                episode.add(row)
            episode.commit(success=False)
    return path


def replay(online, offline, **kwargs) -> Replay:
    spec = TrajectoryReader(offline).spec
    return Replay(spec, tuple(spec.state), online, offline, batch_size=64, discount=0.99, n_step=1, chunk=1,
                  seed=0, writer=False, **kwargs)


def test_human_rows_are_the_flagged_valid_starts(tmp_path, offline):
    online = online_store(tmp_path / "online.zarr", offline)
    assert human_rows(TrajectoryReader(online)).tolist() == [4, 5, 6, 20, 21]
    assert human_rows(TrajectoryReader(offline)).size == 0, "a store without the key has no human steps"


def test_rlpd_draws_the_offline_half_over_demos_and_human_steps_alike(tmp_path, offline):
    r = replay(online_store(tmp_path / "online.zarr", offline), offline)
    batch = r.sample(offline_ratio=0.5)
    dataset_rows = len(r.offline)
    expected_human = round(32 * 5 / (dataset_rows + 5))
    assert r.drawn["human"] == expected_human and r.drawn["offline"] == 32 - expected_human
    assert r.drawn["online"] == 32, "the online half is unchanged"
    human_index = batch.source.numpy() if hasattr(batch.source, "numpy") else batch.source
    assert (human_index == 0).sum() == 32 - expected_human, "human steps are labelled online rows (source 1)"
    r.close()


def test_wsrl_online_phase_draws_hil_ratio_from_human_steps_only(tmp_path, offline):
    r = replay(online_store(tmp_path / "online.zarr", offline), offline, hil_ratio=0.25)
    r.human.sample(8)
    t, _ = r.human._draw(200)
    assert set(t.tolist()) <= {4, 5, 6, 20, 21}, "only flagged rows are drawn"
    r.sample(offline_ratio=0.0)
    assert r.drawn == {"offline": 0, "online": 48, "human": 16}
    r.close()


def test_without_takeovers_the_batches_are_as_before(tmp_path, offline):
    r = replay(online_store(tmp_path / "online.zarr", offline, flags=[[False] * 10] * 2), offline)
    r.sample(offline_ratio=0.0)
    r.sample(offline_ratio=0.5)
    assert r.drawn == {"offline": 32, "online": 96}, "no human key: the learner's phase log is as before"
    r.close()


def test_the_demo_side_rule():
    assert demo_side(0.5, 0.5, 90, 10) == (0.45, 0.05)
    assert demo_side(0.0, 0.3, 0, 10) == (0.0, 0.3)
    assert demo_side(0.5, 0.5, 90, 0) == (0.5, 0.0)
    with pytest.raises(ValueError, match="hil_ratio=1.0"):
        Replay.__init__(object.__new__(Replay), None, (), "x", None, batch_size=1, discount=0.9, n_step=1, chunk=1,
                        seed=0, hil_ratio=1.0)


def test_the_scripted_operator_takes_over_a_stalled_policy_in_the_twin_rollouts(tmp_path):
    from robot_rl.learner.rollout import Rollouts
    from robot_rl.learner.scripted_operator import ScriptedOperator
    from robot_rl.sim import make_env

    env = make_env("widowx", "reach", max_steps=30)
    operator = ScriptedOperator(env, patience=3, hold=3)
    with StoreWriter.create(tmp_path / "online.zarr", env.embodiment.with_optional("intervention")) as writer:
        rollouts = Rollouts([env], writer, seed=0, operators=[operator])
        for _ in range(60):
            rollouts.step(lambda obs: np.zeros((1, 7), np.float32))  # a policy that never moves: it strays
        rollouts.close()
    reader = TrajectoryReader(tmp_path / "online.zarr")
    flags = reader.column("intervention")
    assert flags[:3].tolist() == [False] * 3, "patience: 3 ticks of the policy first"
    assert flags.any() and operator.takeovers >= 2
    ends = np.asarray(reader.episode_ends)
    for i, (start, end) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
        assert reader.episode_info(i)["human_steps"] == int(flags[start:end].sum())
    assert sum(reader.episode_info(i)["success"] for i in range(reader.num_episodes)) >= 1, "the expert reaches"
    moved = np.abs(reader.column("action")[flags][:, :3]).max()
    assert moved > 0, "the operator's rows hold the expert's actions, not the policy's zeros"
