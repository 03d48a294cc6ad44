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
