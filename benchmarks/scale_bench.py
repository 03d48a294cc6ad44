"""Many actors, one learner, and the store on object storage: what they cost on this machine.

    python benchmarks/scale_bench.py             # about 2-3 minutes on the 2-core VM
    python benchmarks/scale_bench.py --seconds 20

Part 1: 1, 2 and 4 twin actors as Ray actors (a local Ray on 127.0.0.1), each stepping the WidowX reach
twin with the demo's policy network and appending whole episodes to its own store, while the learner
(the demo's WSRL agent: 2 x 128, two critics, batch 128) updates on everything they committed, read as
the finetune learner reads it (robot_rl.learner.replay.online_stores). Both rates are measured over the
same window; the peers are each side alone (one actor without a learner, the learner without actors).
From the lone actor's CPU time per step, the table says what more cores would give.

Part 2: store write and read rates (frames with two 128 x 128 cameras) on a real S3 API (moto's server
on 127.0.0.1, tests/s3_server.py) beside the local disk, with the ratio.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "tests"))  # s3_server: the test suite's moto server

console = Console(width=150)  # the tables whole, in a log too
DEMO_AGENT = ["robot=widowx", "task=reach", "algo=wsrl", "algo.agent.hidden=[128,128]", "algo.agent.ensemble_size=2",
              "algo.agent.n_actions=5", "algo.batch_size=128", "algo.discount=0.9", "algo.n_step=3", "threads=1"]


def bench_config():
    from robot_rl.cli.config import load_config
    from robot_rl.tasks import split_task

    return split_task(load_config("train", DEMO_AGENT))


class BenchActor:
    """A twin actor without pacing or checkpoints: the cost of stepping and committing, nothing else."""

    def __init__(self, cfg_yaml: str, store: str, actor_id: int):
        import torch

        from robot_rl.datasets import StoreWriter
        from robot_rl.learner.rollout import Rollouts
        from robot_rl.learner.trainer import build_agent, make_twin

        torch.set_num_threads(1)
        cfg = OmegaConf.create(cfg_yaml)
        env = make_twin(cfg)
        self.agent = build_agent(cfg, env.embodiment)
        self.writer = StoreWriter.create(store, env.embodiment)
        self.rollouts = Rollouts([env], self.writer, seed=1000 * actor_id, episode_info={"actor_id": actor_id})

    def warm(self) -> int:
        """Step until an episode is committed (so a learner has data); returns the steps taken."""
        policy = lambda obs: self.agent.act(obs)  # noqa: E731
        steps = 0
        while self.writer.num_episodes == 0:
            self.rollouts.step(policy)
            steps += 1
        return steps

    def run(self, seconds: float) -> tuple[int, float, float]:
        """Step for ``seconds``; returns (env steps, wall s, CPU s of this process)."""
        policy = lambda obs: self.agent.act(obs)  # noqa: E731
        steps, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - wall0 < seconds:
            self.rollouts.step(policy)
            steps += 1
        return steps, time.perf_counter() - wall0, time.process_time() - cpu0


class Learner:
    def __init__(self, cfg, run_dir: Path, spec):
        from robot_rl.algos import ALGORITHMS
        from robot_rl.learner.replay import Replay
        from robot_rl.learner.trainer import build_agent, online_store

        self.agent = build_agent(cfg, spec)
        online = [p for p in ALGORITHMS[cfg.algo.name].plan(cfg.algo.schedule) if p.online and p.learn]
        self.phase = online[-1]
        self.agent.begin_phase(self.phase)
        self.replay = Replay(spec, tuple(cfg.obs_keys), online_store(run_dir), None, batch_size=cfg.algo.batch_size,
                             discount=cfg.algo.discount, n_step=cfg.algo.n_step, chunk=self.agent.config.chunk,
                             seed=0, writer=False)

    def wait_for_data(self) -> None:
        self.replay.refresh()
        if not self.replay.online_ready():
            raise RuntimeError("the actors committed no episode")

    def run(self, seconds: float) -> tuple[int, float]:
        updates, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            if updates % 50 == 0:
                self.replay.refresh()  # as the finetune learner tails the stores
            self.agent.update([self.replay.sample(0.0)])
            updates += 1
        return updates, time.perf_counter() - start


def part_actors(ray, cfg, seconds: float, counts: tuple[int, ...]) -> tuple[Table, list[str]]:
    import torch

    from robot_rl.learner.replay import actor_store
    from robot_rl.learner.trainer import make_twin

    torch.set_num_threads(1)
    spec = make_twin(cfg).embodiment
    remote = ray.remote(num_cpus=1)(BenchActor)
    rows = []

    def trial(n: int, with_learner: bool):
        run_dir = Path(tempfile.mkdtemp(prefix="scale_bench_"))
        try:
            actors = [remote.remote(OmegaConf.to_yaml(cfg), str(actor_store(run_dir, k)), k) for k in range(n)]
            ray.get([a.warm.remote() for a in actors])  # built, warm, and an episode committed
            learner = Learner(cfg, run_dir, spec) if with_learner else None
            if learner is not None:
                learner.wait_for_data()
            pending = [a.run.remote(seconds) for a in actors]
            learned = learner.run(seconds) if learner is not None else (0, seconds)
            results = ray.get(pending)
            for a in actors:
                ray.kill(a)
            return results, learned
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    alone_results, _ = trial(1, with_learner=False)
    steps, wall, cpu = alone_results[0]
    alone = (steps / wall, cpu / steps)
    rows.append(("peer: 1 actor, no learner", steps / wall, 0.0, steps / wall))
    updates_alone = _learner_alone(cfg, spec, seconds, ray, remote)
    rows.append(("peer: learner, no actors", 0.0, updates_alone, 0.0))
    for n in counts:
        results, (updates, lwall) = trial(n, with_learner=True)
        env_rate = sum(s / w for s, w, _ in results)
        rows.append((f"{n} Ray actor{'s' if n > 1 else ''} + learner", env_rate, updates / lwall, env_rate / n))

    table = Table(title=f"{seconds:g} s windows on {os.cpu_count()} cores: env steps/s and learner updates/s")
    for col in ("layout", "env steps/s (all actors)", "learner updates/s", "env steps/s per actor",
                "env steps/s / lone actor"):
        table.add_column(col, justify="right" if col != "layout" else "left")
    for name, env_rate, upd, per in rows:
        table.add_row(name, f"{env_rate:.0f}" if env_rate else "-", f"{upd:.1f}" if upd else "-",
                      f"{per:.0f}" if per else "-", f"{env_rate / alone[0]:.2f}x" if env_rate else "-")
    per_core = 1 / alone[1]
    notes = [f"one actor costs {alone[1] * 1e3:.2f} ms of CPU per env step (twin + policy + commit): "
             f"{per_core:.0f} env steps/s per core it gets (alone it got {alone[0]:.0f}/s of wall time here)",
             f"the learner alone: {updates_alone:.1f} updates/s on one core; at UTD 1 it consumes that many env "
             f"steps/s, {updates_alone / per_core:.2f} of an actor core"]
    for cores in (4, 8, 16, 32):  # one core for the learner; actors share nothing but their own stores
        notes.append(f"expected on {cores} cores: about {(cores - 1) * per_core:.0f} env steps/s from {cores - 1} "
                     f"actors, {(cores - 1) * per_core / updates_alone:.0f}x what this CPU learner consumes at UTD 1: "
                     "beyond one or two actors a faster (GPU) learner or a higher UTD is what uses them")
    return table, notes


def _learner_alone(cfg, spec, seconds: float, ray, remote) -> float:
    from robot_rl.learner.replay import actor_store

    run_dir = Path(tempfile.mkdtemp(prefix="scale_bench_"))
    try:
        actor = remote.remote(OmegaConf.to_yaml(cfg), str(actor_store(run_dir, 0)), 0)
        ray.get(actor.warm.remote())
        ray.kill(actor)
        learner = Learner(cfg, run_dir, spec)
        learner.wait_for_data()
        updates, wall = learner.run(seconds)
        return updates / wall
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def store_rates(url: str, episodes: int, length: int) -> tuple[float, float, float]:
    """(frames/s written with commits, frames/s read back with every camera frame, MB per frame)."""
    from robot_rl.datasets import StoreWriter, TrajectoryReader
    from robot_rl.datasets.synthetic import SyntheticEpisodes, synthetic_spec

    spec = synthetic_spec(cameras=("front", "wrist"), height=128, width=128)
    fake = SyntheticEpisodes(spec, seed=0)
    frames = [list(fake.frames(length)) for _ in range(episodes)]
    start = time.perf_counter()
    with StoreWriter.create(url, spec, durable=False) as writer:
        for episode in frames:
            with writer.new_episode(source="policy") as recording:
                for frame in episode:
                    recording.add(frame)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    reader = TrajectoryReader(url)
    everything = np.arange(reader.num_steps)
    for camera in spec.cameras:
        reader.gather(camera, everything)
    read_s = time.perf_counter() - start
    frame_mb = sum(int(np.prod(k.shape)) * np.dtype(k.dtype).itemsize for k in spec.keys().values()) / 1e6
    return episodes * length / write_s, episodes * length / read_s, frame_mb


def part_store(episodes: int, length: int) -> Table | str:
    from s3_server import SETUP, S3Server, moto_server_executable

    executable = moto_server_executable()
    if executable is None:
        return f"part 2 skipped: no moto server ({SETUP})"
    work = Path(tempfile.mkdtemp(prefix="scale_bench_store_"))
    try:
        local = store_rates(str(work / "local.zarr"), episodes, length)
        with S3Server(executable, work / "moto.log") as s3:
            os.environ.update(s3.env)
            remote = store_rates(f"{s3.bucket('bench-' + uuid.uuid4().hex[:8])}/store.zarr", episodes, length)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"store: {episodes} episodes x {length} frames, two 128x128 cameras "
                        f"({local[2]:.3f} MB a frame raw)")
    for col in ("store", "write frames/s", "write MB/s", "read frames/s", "read MB/s", "write / local",
                "read / local"):
        table.add_column(col, justify="right" if col != "store" else "left")
    for name, (w, r, mb) in (("peer: local disk (zarr LocalStore)", local), ("S3 API (moto on 127.0.0.1, obstore)", remote)):
        table.add_row(name, f"{w:.0f}", f"{w * mb:.1f}", f"{r:.0f}", f"{r * mb:.1f}", f"{w / local[0]:.2f}x",
                      f"{r / local[1]:.2f}x")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0, help="each measured window")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--episodes", type=int, default=4, help="part 2: episodes written and read")
    parser.add_argument("--length", type=int, default=50, help="part 2: frames per episode")
    args = parser.parse_args()
    from robot_rl.learner.ray_actors import import_ray, start_ray

    ray = import_ray(local=True)
    start_ray(ray, None, max(args.actors))
    try:
        table, notes = part_actors(ray, bench_config(), args.seconds, tuple(args.actors))
    finally:
        ray.shutdown()
    console.print(table)
    for note in notes:
        console.print(f"- {note}", soft_wrap=True)
    result = part_store(args.episodes, args.length)
    console.print(result)


if __name__ == "__main__":
    main()
