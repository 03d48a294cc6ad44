"""Several twin actors against one learner: each actor's own store (a store has one writer), the learner
reading them all as one source, and `robot-rl finetune realtime=false actors=N` on a real local Ray
instance (bound to 127.0.0.1) with an actor SIGKILLed and restarted by Ray."""
from __future__ import annotations

import os
import re
import signal
import subprocess
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from learner_helpers import start_finetune
from robot_rl.datasets import StoreLockedError, StoreWriter, TrajectoryReader, create_store
from robot_rl.datasets.merged import MergedReader
from robot_rl.datasets.repair import validate
from robot_rl.datasets.synthetic import SyntheticEpisodes, synthetic_spec
from robot_rl.learner.replay import actor_store, actor_stores, online_stores
from ros_helpers import wait_for as poll_until

wait_for = partial(poll_until, period=0.2)  # the conditions open stores and read logs: poll gently
REPO = Path(__file__).resolve().parents[1]
TINY = ["robot=widowx", "task=reach", "algo=wsrl", "algo.agent.hidden=[32,32]", "algo.agent.ensemble_size=2",
        "algo.batch_size=16", "algo.schedule.offline_updates=20", "algo.schedule.utd=1", "eval.episodes=1",
        "eval.every_updates=0", "eval.every_env_steps=0", "eval.video=false", "threads=1", "grace_s=3"]


def spec():
    return synthetic_spec(cameras=("front",), height=16, width=16)


def commit(writer: StoreWriter, episodes: SyntheticEpisodes, length: int, actor_id: int) -> None:
    with writer.new_episode(source="policy", actor_id=actor_id) as episode:
        for frame in episodes.frames(length):
            episode.add(frame)


def test_two_writers_on_one_store_refuse_each_other(tmp_path):
    """Why each actor has a store of its own: the second writer of a store is refused."""
    url = tmp_path / "online.zarr"
    with StoreWriter.create(url, spec()):
        with pytest.raises(StoreLockedError, match="already open for writing"):
            StoreWriter(url)


def test_the_merged_reader_lays_out_each_stores_episodes_as_committed_and_never_moves_a_row(tmp_path):
    """Two actors' stores, a third that appears later and one still being created: every committed episode
    of each store appears once, rows already laid out keep their place (images included), and each
    episode's info carries its actor's id."""
    run, fake = tmp_path / "run", SyntheticEpisodes(spec(), seed=1)
    create_store(run / "online.zarr", spec())
    writers = [StoreWriter.open_or_create(actor_store(run, k), spec()) for k in (0, 1)]
    commit(writers[0], fake, 5, 0)
    commit(writers[1], fake, 7, 1)
    merged = MergedReader(lambda: [run / "online.zarr", *actor_stores(run)])
    assert merged.num_episodes == 2 and merged.num_steps == 12
    first_rows = {key: merged.column(key).copy() for key in ("action", "reward")}
    first_front = merged.gather("front", np.arange(12))

    commit(writers[1], fake, 3, 1)
    late = StoreWriter.open_or_create(actor_store(run, 2), spec())
    commit(late, fake, 4, 2)
    (run / "online" / "actor_3.zarr").mkdir()  # a writer is creating it: not a store yet
    assert merged.refresh() == 2 and merged.num_steps == 19
    for key, rows in first_rows.items():
        np.testing.assert_array_equal(merged.column(key)[:12], rows)
    np.testing.assert_array_equal(merged.gather("front", np.arange(12)), first_front)

    assert [merged.episode_info(i)["actor_id"] for i in range(3)] == [0, 1, 1]
    assert merged.episode_info(3)["actor_id"] == 2
    for index, (store, local) in enumerate([(0, 0), (1, 0), (1, 1), (2, 0)]):  # each episode, row for row
        own = TrajectoryReader(actor_store(run, store)).episode(local)
        start, stop = (int(merged.episode_ends[index - 1]) if index else 0), int(merged.episode_ends[index])
        assert merged.store_of(index) == str(actor_store(run, store))
        np.testing.assert_array_equal(merged.column("action")[start:stop], own["action"])
        np.testing.assert_array_equal(merged.gather("front", np.arange(start, stop)), own["front"])
    for writer in (*writers, late):
        writer.close()


def test_the_learners_online_source_refuses_an_actor_store_of_another_embodiment(tmp_path):
    """online_stores checks every actor store as the run's own: the error names the store and the key."""
    run = tmp_path / "run"
    reader = online_stores(run / "online.zarr", spec(), ("state",))
    assert reader.num_steps == 0
    create_store(actor_store(run, 0), synthetic_spec(cameras=("front",), height=16, width=16, state_dim=3))
    with pytest.raises(ValueError, match=r"actor_0\.zarr: key 'state' has shape \(3,\)"):
        reader.refresh()


# --- robot-rl finetune actors=N on a local Ray ------------------------------------------------------


def ray_pids(log: Path) -> list[int]:
    found = re.search(r"ray actors: .* \(pids \[([\d, ]+)\]\)", log.read_text())
    return [int(p) for p in found.group(1).split(",")] if found else []


def committed(url: Path) -> int:
    try:
        return TrajectoryReader(url).num_episodes
    except Exception:  # not created yet
        return 0


def listening_sockets(pid: int) -> list[str]:
    out = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


@pytest.mark.slow
def test_finetune_with_two_ray_actors_survives_a_sigkilled_actor(tmp_path, dataset):
    """`robot-rl finetune realtime=false actors=2`: two Ray actors append to their own stores with their
    ids in the episode info; one is SIGKILLed mid-run, Ray restarts it (it commits again), its killed
    episode leaves no damage, and the learner finishes on both actors' episodes. Every socket of the Ray
    workers listens on loopback."""
    run, log = tmp_path / "run", tmp_path / "finetune.log"
    job = start_finetune(*TINY, f"dataset={dataset}", "realtime=false", "actors=2", "algo.schedule.warmup_steps=0",
                "algo.schedule.online_steps=1600", "publish_every=40", "max_lag=40", f"run_dir={run}", log=log)
    try:
        wait_for(lambda: len(ray_pids(log)) == 2, 120, "the Ray actors to start")
        victim = ray_pids(log)[1]
        sockets = listening_sockets(victim)
        assert sockets and all(s.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for s in sockets), sockets
        wait_for(lambda: committed(actor_store(run, 1)) >= 1, 180, "actor 1's episodes")
        os.kill(victim, signal.SIGKILL)
        at_kill = committed(actor_store(run, 1))
        wait_for(lambda: committed(actor_store(run, 1)) > at_kill or job.poll() is not None, 180,
                 "actor 1, restarted by Ray, to commit again")
        assert committed(actor_store(run, 1)) > at_kill, log.read_text()[-4000:]
        job.wait(timeout=300)
        assert job.returncode == 0, log.read_text()[-4000:]
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGINT)
            job.wait(timeout=60)
    for k in (0, 1):
        assert validate(actor_store(run, k)) == []
        reader = TrajectoryReader(actor_store(run, k))
        assert reader.num_episodes >= 1
        assert {reader.episode_info(i)["actor_id"] for i in range(reader.num_episodes)} == {k}
    assert TrajectoryReader(run / "online.zarr").num_episodes == 0  # the single actor's store stays empty
    assert (run / "report" / "report.md").exists()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from learner_helpers import demo_store

    return demo_store(tmp_path_factory.mktemp("scale") / "reach.zarr", episodes=3)


@pytest.mark.parametrize("overrides, says", [
    (["actors=0"], "actors=0: expected a positive number of twin actors"),
    (["actors=2"], "several actors are fast twin actors on Ray; give backend=twin realtime=false "
                   "(found backend=twin realtime=True)"),
    (["object_store=s3://bucket/run"], "object_store=s3://bucket/run: the run's stores and checkpoints on object "
                                       "storage are for the fast twin actors"),
])
def test_bad_actor_settings_name_the_key_and_the_fix(tmp_path, overrides, says):
    from robot_rl.cli.config import ConfigError
    from robot_rl.cli.finetune import resolve

    with pytest.raises(ConfigError, match=re.escape(says)):
        resolve(["task=widowx_reach", "algo=wsrl", f"run_dir={tmp_path / 'run'}", *overrides])
    assert not (tmp_path / "run").exists()  # nothing written


def test_actors_2_runs_the_ray_actors_process_with_the_runs_settings(tmp_path):
    from robot_rl.cli.finetune import actor_processes, resolve

    cfg = resolve(["task=widowx_reach", "algo=wsrl", "realtime=false", "actors=3", "max_lag=20",
                   "ray_address=127.0.0.1:6379", f"run_dir={tmp_path / 'run'}"])
    [process] = actor_processes(cfg, tmp_path / "run", 50)
    assert process.module == "robot_rl.learner.ray_actors" and not process.completes_job
    assert process.args == ("--run-dir", str(tmp_path / "run"), "--actors", "3", "--max-lag", "20", "--max-restarts",
                            "10", "--ray-address", "127.0.0.1:6379", "--keep-running-when-finished")
