"""The store and checkpoints on a real S3 API: moto's server on 127.0.0.1 (tests/s3_server.py), spoken to
over HTTP by obstore with credentials and the endpoint from the environment, as a user's bucket would be.
Writers and readers run in processes of their own; a writer is SIGKILLed mid-episode."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from s3_server import SETUP, S3Server, moto_server_executable

from robot_rl.datasets import StoreLockedError, StoreWriter, TrajectoryReader
from robot_rl.datasets.repair import validate
from robot_rl.datasets.synthetic import SyntheticEpisodes, synthetic_spec

REPO = Path(__file__).resolve().parents[1]
ROBOT_RL = str(REPO / ".venv" / "bin" / "robot-rl")

pytestmark = pytest.mark.skipif(moto_server_executable() is None, reason=f"no moto server: {SETUP}")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with S3Server(moto_server_executable(), tmp_path_factory.mktemp("moto") / "moto.log") as server:
        saved = {k: os.environ.get(k) for k in server.env}
        os.environ.update(server.env)
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def url(s3) -> str:
    return f"{s3.bucket('robot-rl-' + uuid.uuid4().hex[:8])}/runs/online.zarr"


def spec():
    return synthetic_spec(cameras=("front",), height=32, width=32)


def python(code: str, *args: str, **popen) -> subprocess.Popen:
    """Another process, with the server's environment (inherited from os.environ)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO, **popen)


READ = """
    import json, sys
    import numpy as np
    from robot_rl.datasets import TrajectoryReader
    r = TrajectoryReader(sys.argv[1])
    front = r.gather("front", np.arange(r.num_steps))
    print(json.dumps({"episodes": r.num_episodes, "steps": r.num_steps, "action": float(r.column("action").sum()),
                      "front": int(front.astype(np.int64).sum()), "info": [r.episode_info(i) for i in range(r.num_episodes)]}))
"""


def read_elsewhere(url: str) -> dict:
    reader = python(READ, url)
    out, _ = reader.communicate(timeout=120)
    assert reader.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_a_store_on_s3_is_written_committed_and_read_from_another_process(url):
    fake = SyntheticEpisodes(spec(), seed=3)
    with StoreWriter.create(url, spec()) as writer:
        for length, success in ((12, True), (7, False)):
            with writer.new_episode(source="policy", actor_id=4) as episode:
                for frame in fake.frames(length):
                    episode.add(frame)
                episode.commit(success=success)
    mine = TrajectoryReader(url)
    theirs = read_elsewhere(url)
    assert (theirs["episodes"], theirs["steps"]) == (2, 19)
    assert theirs["action"] == pytest.approx(float(mine.column("action").sum()))
    assert theirs["front"] == int(mine.gather("front", np.arange(19)).astype(np.int64).sum())
    assert [i["success"] for i in theirs["info"]] == [True, False] and theirs["info"][0]["actor_id"] == 4
    assert validate(url) == []


def test_a_second_writer_of_an_s3_store_is_refused(url):
    """The lock is a conditional put (create only if absent), so of two writers only one proceeds."""
    with StoreWriter.create(url, spec()):
        with pytest.raises(StoreLockedError, match="--break-lock"):
            StoreWriter(url)
    StoreWriter(url).close()  # a clean close removed the lock


WRITE_THEN_HANG = """
    import sys, time
    from robot_rl.datasets import StoreWriter
    from robot_rl.datasets.synthetic import SyntheticEpisodes, synthetic_spec
    spec = synthetic_spec(cameras=("front",), height=32, width=32)
    fake = SyntheticEpisodes(spec, seed=5)
    writer = StoreWriter.create(sys.argv[1], spec)
    for length in (10, 6):
        with writer.new_episode(source="policy") as episode:
            for frame in fake.frames(length):
                episode.add(frame)
    episode = writer.new_episode(source="policy")
    frames = fake.frames(9)
    for frame in frames:
        episode.add(frame)
    deadline = time.monotonic() + 30
    while writer._data.attrs.get("flushed", 0) < 25 and time.monotonic() < deadline:  # the timer flushed them
        time.sleep(0.05)
        writer._data = writer.root["data"]  # re-read the attribute from the server
    print("IN AN EPISODE", flush=True)
    time.sleep(600)
"""


def test_a_sigkilled_s3_writer_loses_only_its_open_episode_and_recover_keeps_the_rest(url):
    writer = python(WRITE_THEN_HANG, url)
    try:
        assert writer.stdout.readline().strip() == "IN AN EPISODE", writer.stdout.read()
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert read_elsewhere(url)["episodes"] == 2  # readers see the committed episodes at once
    with pytest.raises(StoreLockedError, match="--break-lock"):  # a dead writer's lock stays on S3
        StoreWriter(url)
    recover = subprocess.run([ROBOT_RL, "data", "recover", url, "--salvage", "--break-lock"], capture_output=True,
                             text=True, timeout=120)
    assert recover.returncode == 0, recover.stdout + recover.stderr
    after = read_elsewhere(url)
    assert (after["episodes"], after["steps"]) == (3, 25)
    assert after["info"][2]["recovered"] and not after["info"][0]["recovered"]
    assert validate(url) == []
    with StoreWriter(url) as reopened:  # appending goes on
        assert reopened.num_episodes == 3


RESUME_ELSEWHERE = """
    import json, sys
    import torch
    from robot_rl.learner.checkpoint import latest_checkpoint, load_checkpoint
    from robot_rl.learner.policy import load_agent
    policy = load_agent(sys.argv[1])  # the policy node's and deploy's way in: a local copy of the latest
    agent = policy.agent
    state = load_checkpoint(latest_checkpoint(sys.argv[1]), agent, agent.optimizers)  # the learner's resume
    moments = sum(float(v.abs().sum()) for opt in agent.optimizers.values() for s in opt.state.values()
                  for v in s.values() if torch.is_tensor(v))
    print(json.dumps({"folder": policy.folder.name, "env_steps": state["env_steps"], "moments": moments,
                      "weights": float(sum(p.abs().sum() for p in agent.state_dict().values()))}))
"""


def test_checkpoints_on_s3_are_published_then_loaded_and_resumed_by_another_process(s3, tmp_path, monkeypatch):
    """save_checkpoint to an s3:// folder uploads the checkpoint and moves `latest` last, keeping the newest
    `keep`; another process (its own cache) loads the latest policy and resumes weights, optimizer moments
    and counters from it."""
    import obstore
    import torch

    from learner_helpers import tiny_checkpoint
    from robot_rl.learner.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from robot_rl.learner.policy import load_agent

    monkeypatch.setenv("ROBOT_RL_CACHE", str(tmp_path / "learner_cache"))
    url = f"{s3.bucket('ckpt-' + uuid.uuid4().hex[:8])}/runs/ft1/checkpoints"
    trained = latest_checkpoint(tiny_checkpoint(tmp_path / "run") / "checkpoints")
    policy = load_agent(trained)
    agent = policy.agent
    state = load_checkpoint(trained, agent, agent.optimizers)
    config_yaml = (trained / "config.yaml").read_text()
    for step in range(3):
        save_checkpoint(url, f"step_{step:010d}", agent, agent.optimizers, {**state, "env_steps": 100 + step},
                        config_yaml, spec=policy.spec, keep=2)
    store = obstore.store.from_url(url)
    names = {meta["path"].split("/")[0] for batch in obstore.list(store) for meta in batch}
    assert names == {"latest", "step_0000000001", "step_0000000002"}

    reader = python(RESUME_ELSEWHERE, url, env={**os.environ, "ROBOT_RL_CACHE": str(tmp_path / "actor_cache")})
    out, _ = reader.communicate(timeout=120)
    assert reader.returncode == 0, out
    found = json.loads(out.strip().splitlines()[-1])
    moments = sum(float(v.abs().sum()) for opt in agent.optimizers.values() for s in opt.state.values()
                  for v in s.values() if torch.is_tensor(v))
    assert found["folder"] == "step_0000000002" and found["env_steps"] == 102
    assert found["weights"] == pytest.approx(float(sum(p.abs().sum() for p in agent.state_dict().values())))
    assert moments > 0 and found["moments"] == pytest.approx(moments)
    assert (tmp_path / "actor_cache").is_dir()  # it read its own copy, not the learner's


@pytest.mark.slow
def test_finetune_with_two_ray_actors_keeps_its_stores_and_checkpoints_in_the_bucket(s3, tmp_path, monkeypatch):
    """`robot-rl finetune realtime=false actors=2 object_store=s3://...`: the actors append to their stores
    in the bucket and act with checkpoints they fetch from it; the learner consumes the bucket's stores and
    publishes there. The run folder keeps only what is local (config, logs, evaluations, report)."""
    from learner_helpers import demo_store

    monkeypatch.setenv("ROBOT_RL_CACHE", str(tmp_path / "cache"))
    dataset = demo_store(tmp_path / "reach.zarr", episodes=3)
    bucket = f"{s3.bucket('run-' + uuid.uuid4().hex[:8])}/runs/ft1"
    run = tmp_path / "run"
    job = subprocess.run(
        [ROBOT_RL, "finetune", "robot=widowx", "task=reach", "algo=wsrl", "algo.agent.hidden=[32,32]",
         "algo.agent.ensemble_size=2", "algo.batch_size=16", "algo.schedule.offline_updates=20", "algo.schedule.utd=1",
         "algo.schedule.warmup_steps=0", "algo.schedule.online_steps=300", "eval.episodes=1", "eval.every_updates=0",
         "eval.every_env_steps=0", "eval.video=false", "threads=1", "grace_s=3", "publish_every=40", "max_lag=40",
         f"dataset={dataset}", "realtime=false", "actors=2", f"object_store={bucket}", f"run_dir={run}"],
        capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, (job.stdout + job.stderr)[-4000:]
    stores = [TrajectoryReader(f"{bucket}/online/actor_{k}.zarr") for k in (0, 1)]
    assert sum(r.num_steps for r in stores) >= 300
    for k, reader in enumerate(stores):
        assert {reader.episode_info(i)["actor_id"] for i in range(reader.num_episodes)} <= {k}
        assert validate(f"{bucket}/online/actor_{k}.zarr") == []
    import obstore

    latest = bytes(obstore.get(obstore.store.from_url(f"{bucket}/checkpoints"), "latest").bytes()).decode()
    assert latest.endswith("_000000300")
    assert not (run / "checkpoints").exists() and not (run / "online").exists() and not (run / "online.zarr").exists()
    assert (run / "report" / "report.md").exists()
