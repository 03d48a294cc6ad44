"""Trajectory store benchmark: write rates per codec and sampling rates, each beside a peer.

    python benchmarks/store_bench.py           # full run (a few minutes)
    python benchmarks/store_bench.py --quick   # small sizes (what `make demo` runs)

Write: 3 cameras 480 x 640 RGB + 14-D state + 7-D action at 30 Hz through ``EpisodeWriter``, against
appending the same frames to plain zarr arrays one frame at a time (same codecs).
Sample: batches of 256 transitions (obs and next_obs: two 128 x 128 cameras + 14-D state) from the
store loaded in RAM and from disk (warm page cache), against plain numpy fancy indexing of the same
arrays in memory (the ceiling) and a naive reader calling zarr once per sampled row.
Flush: the cost of the writer's flush policy (a partial block written at the latest FLUSH_INTERVAL_S after
its first frame, so a kill loses at most that much): a recorder at 50 Hz (one 128 x 128 camera + 14-D
state), paced in real time, its episode's low-dimensional chunks nearly full (the most a flush rewrites),
with the timed flush and without it (blocks written only when full, every 256 frames): the writer
process's CPU time per second recorded, the longest single block write, and the frames a kill would lose.
Prints tables; passes or fails nothing.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from rich.console import Console
from rich.table import Table

from robot_rl.datasets import writer as writer_module
from robot_rl.datasets.codecs import image_array_options, lowdim_array_options
from robot_rl.datasets.frames import FrameReader
from robot_rl.datasets.layout import LOWDIM_CHUNK_ROWS
from robot_rl.datasets.prefetch import Prefetcher
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.samplers import TransitionSampler
from robot_rl.datasets.synthetic import SyntheticEpisodes, synthetic_spec
from robot_rl.datasets.writer import StoreWriter

console = Console(width=140)
CONTROL_HZ = 30.0


def frame_pool(spec, n=16):
    """Distinct frames to cycle through, so generating data costs nothing during the timed loop."""
    return list(SyntheticEpisodes(spec, seed=0).frames(n))


def write_store(path, spec, frames, total, episode_length):
    with StoreWriter.create(path, spec, overwrite=True) as store:
        start = time.perf_counter()
        written = 0
        while written < total:
            episode = store.new_episode(source="teleop")
            for t in range(min(episode_length, total - written)):
                episode.add(frames[(written + t) % len(frames)])
            written += min(episode_length, total - written)
            episode.commit()
        return total / (time.perf_counter() - start)


def write_zarr_per_frame(path, spec, frames, total):
    root = zarr.open_group(str(path), mode="w")
    arrays = {}
    for key, s in spec.keys().items():
        cam = spec.cameras.get(key)
        options = image_array_options(cam.codec, s.shape, cam.jpeg_quality) if cam else lowdim_array_options(4096, s.shape)
        options.pop("shards", None)  # the peer: plain zarr, one file per frame
        arrays[key] = root.create_array(key, shape=(0, *s.shape), dtype=s.dtype, **options)
    start = time.perf_counter()
    for i in range(total):
        for key, array in arrays.items():
            array.append(np.asarray(frames[i % len(frames)][key], array.dtype)[None])
    return total / (time.perf_counter() - start)


def disk_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def bench_write(work, quick):
    total = 60 if quick else 450
    table = Table(title=f"write: 3 x 480x640 RGB + 14-D state + 7-D action, {total} frames, target {CONTROL_HZ:g} Hz")
    for col in ("codec", "store frames/s", "realtime x", "zarr append/frame (peer)", "ratio",
                "KB per image", "decode images/s", "zarr read/image (peer)", "ratio"):
        table.add_column(col, justify="right")
    for codec in ("zstd", "lz4", "raw", "jpeg"):
        spec = synthetic_spec(cameras=("cam0", "cam1", "cam2"), height=480, width=640, codec=codec,
                              control_rate_hz=CONTROL_HZ)
        frames = frame_pool(spec)
        path = work / f"write_{codec}.zarr"
        peer_path, peer_total = work / f"peer_{codec}.zarr", max(total // 3, 10)
        ours = write_store(path, spec, frames, total, episode_length=150)
        peer = write_zarr_per_frame(peer_path, spec, frames, peer_total)
        kb = disk_bytes(path / "data" / "cam0") / total / 1024
        ours_decode, peer_decode = decode_rates(path, peer_path, codec, total, peer_total, 1.0 if quick else 3.0)
        table.add_row(codec, f"{ours:.1f}", f"{ours / CONTROL_HZ:.2f}", f"{peer:.1f}", f"{ours / peer:.2f}",
                      f"{kb:.0f}", f"{ours_decode:.0f}", f"{peer_decode:.0f}", f"{ours_decode / peer_decode:.1f}")
        shutil.rmtree(path)
        shutil.rmtree(work / f"peer_{codec}.zarr")
    console.print(table)


def decode_rates(path, peer_path, codec, total, peer_total, seconds):
    """Images per second read back at random, 16 a call: our frame reader on the store against zarr
    reading the peer's plain layout (one file per frame) one frame at a time."""
    reader = FrameReader(zarr.open_group(str(path), mode="r")["data/cam0"], codec, path)
    peer_array = zarr.open_group(str(peer_path), mode="r")["cam0"]
    rng = np.random.default_rng(0)
    ours = lambda: reader.read(rng.integers(0, total, 16))  # noqa: E731
    peer = lambda: [peer_array[int(i)] for i in rng.integers(0, peer_total, 16)]  # noqa: E731
    rates = measure({"ours": ours, "peer": peer}, seconds)
    return rates["ours"] * 16, rates["peer"] * 16


def measure(calls: dict, seconds: float, rounds: int = 3) -> dict[str, float]:
    """Calls per second of each function: round-robin over ``rounds`` rounds, median per function,
    so a slow moment of a shared machine does not land on one contestant only."""
    for call in calls.values():
        call()  # warm-up: numba compilation, first reads, page cache
    rates = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            count, start = 0, time.perf_counter()
            while count == 0 or time.perf_counter() - start < seconds / rounds:
                call()
                count += 1
            rates[name].append(count / (time.perf_counter() - start))
    return {name: float(np.median(r)) for name, r in rates.items()}


def bench_sample(work, quick):
    episodes, length, batch, seconds = (20, 100, 256, 3.0) if quick else (100, 100, 256, 15.0)
    paths = {}
    for codec in ("zstd", "lz4", "raw"):
        spec = synthetic_spec(cameras=("front", "wrist"), height=128, width=128, codec=codec)
        paths[codec] = work / f"sample_{codec}.zarr"
        with StoreWriter.create(paths[codec], spec, overwrite=True) as store:
            gen = SyntheticEpisodes(spec, seed=1)
            for _ in range(episodes):
                episode = store.new_episode(source="scripted")
                for frame in gen.frames(length):
                    episode.add(frame)
                episode.commit()
    disk = TrajectoryReader(paths["zstd"])
    memory = disk.to_memory()
    data = memory.data
    steps = disk.num_steps
    rng = np.random.default_rng(0)
    keys = ("state", "front", "wrist")

    def numpy_ceiling():  # one fancy index per key, obs and next_obs rows together
        t = rng.integers(0, steps - 1, batch)
        both = np.concatenate([t, t + 1])
        return ({k: data[k][both] for k in keys}, data["action"][t], data["reward"][t], data["terminated"][t])

    naive_arrays = {k: zarr.open_array(str(paths["zstd"] / "data" / k)) for k in (*keys, "action", "reward", "terminated")}

    def naive_zarr():
        t = rng.integers(0, steps - 1, batch)
        return [[naive_arrays[k][int(i)] for i in t] + [naive_arrays[k][int(i) + 1] for i in t] for k in keys]

    contestants = {
        "numpy fancy indexing, in RAM (ceiling)": (numpy_ceiling, None),
        "robot_rl in-RAM store": (TransitionSampler(memory, batch).sample, 0.8),
        "robot_rl on-disk store, zstd": (TransitionSampler(disk, batch).sample, 0.5),
        "robot_rl on-disk store, lz4": (TransitionSampler(TrajectoryReader(paths["lz4"]), batch).sample, 0.5),
        "robot_rl on-disk store, raw": (TransitionSampler(TrajectoryReader(paths["raw"]), batch).sample, 0.5),
        "naive: zarr read per sampled row (peer)": (naive_zarr, None),
    }
    rates = measure({name: call for name, (call, _) in contestants.items()}, seconds)
    rows = [(name, rates[name], target) for name, (_, target) in contestants.items()]
    ceiling = rows[0][1]
    table = Table(title=f"sample: {batch} transitions (obs + next_obs, 2 x 128x128 RGB + 14-D state), "
                        f"{steps} steps on disk ({disk_bytes(paths['zstd']) / 2**20:.0f} MiB zstd)")
    for col in ("source", "batches/s", "transitions/s", "of ceiling", "target"):
        table.add_column(col, justify="right" if col != "source" else "left")
    for name, value, target in rows:
        table.add_row(name, f"{value:.1f}", f"{value * batch:,.0f}", f"{value / ceiling:.0%}",
                      f">= {target:.0%}" if target else "")
    console.print(table)
    bench_overlap(disk, batch, quick)


def bench_overlap(disk, batch, quick):
    """What a learner feels: time blocked in sample() per update, with a 25 ms update in between."""
    weights = np.random.default_rng(0).normal(size=(384, 384)).astype(np.float32)

    def learner_update():  # ~25 ms of BLAS work that releases the GIL, like a torch update
        start = time.perf_counter()
        x = weights
        while time.perf_counter() - start < 0.025:
            x = np.tanh(x @ weights)

    n = 10 if quick else 40
    table = Table(title="learner view: time blocked in sample() per update (25 ms update), on-disk zstd store")
    for col in ("sampling", "blocked ms per update", "updates/s"):
        table.add_column(col, justify="right")
    for name, sampler in (("direct (peer)", TransitionSampler(disk, batch, seed=1)),
                          ("prefetch thread", Prefetcher(TransitionSampler(disk, batch, seed=1)))):
        sampler.sample()
        blocked, start = 0.0, time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            sampler.sample()
            blocked += time.perf_counter() - t0
            learner_update()
        total = time.perf_counter() - start
        table.add_row(name, f"{blocked / n * 1e3:.1f}", f"{n / total:.1f}")
        if isinstance(sampler, Prefetcher):
            sampler.close()
    console.print(table)


FLUSH_RATE_HZ = 50.0


def paced_recording(path, spec, frames, seconds: float, flush_s: float) -> tuple[float, list[float], int]:
    """(writer CPU seconds per wall second, each block write's seconds, rows handed over by the timer
    or a full block) for ``seconds`` of frames at FLUSH_RATE_HZ with FLUSH_INTERVAL_S = ``flush_s``."""
    writes: list[float] = []
    real_write, real_interval = writer_module._Flusher._write, writer_module.FLUSH_INTERVAL_S

    def timed_write(self, start, block):
        began = time.perf_counter()
        real_write(self, start, block)
        writes.append(time.perf_counter() - began)

    writer_module._Flusher._write, writer_module.FLUSH_INTERVAL_S = timed_write, flush_s
    try:
        with StoreWriter.create(path, spec, overwrite=True, durable=False) as store:
            filler = store.new_episode(source="teleop")  # the chunks nearly full: a flush rewrites ~4000 rows
            for t in range(LOWDIM_CHUNK_ROWS - 64):
                filler.add(frames[t % len(frames)])
            filler.commit()
            writes.clear()
            episode = store.new_episode(source="teleop")
            cpu, began = time.process_time(), time.perf_counter()
            tick, added = began, 0
            while time.perf_counter() - began < seconds:
                episode.add(frames[added % len(frames)])
                added += 1
                tick += 1.0 / FLUSH_RATE_HZ
                time.sleep(max(0.0, tick - time.perf_counter()))
            store._flusher.wait()
            load = (time.process_time() - cpu) / (time.perf_counter() - began)
            episode.discard()
    finally:
        writer_module._Flusher._write, writer_module.FLUSH_INTERVAL_S = real_write, real_interval
    return load, writes, added


def bench_flush(work, quick):
    spec = synthetic_spec(cameras=("front",), height=128, width=128)
    frames = frame_pool(spec)
    seconds = 5.0 if quick else 20.0
    table = Table(title=f"flush policy: a 50 Hz recorder (1 x 128x128 RGB + 14-D state) for {seconds:g} s, open "
                        f"low-dim chunks near {LOWDIM_CHUNK_ROWS} rows")
    for column in ("policy", "frames", "writer CPU (s per s)", "block writes", "longest write (ms)",
                   "frames a kill loses (at most)", "CPU vs blocks only"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    rows = {}
    for name, flush_s in ((f"timed flush, {writer_module.FLUSH_INTERVAL_S:g} s (this writer)",
                           writer_module.FLUSH_INTERVAL_S), ("full blocks only (peer)", float("inf"))):
        rows[name] = paced_recording(work / "flush.zarr", spec, frames, seconds, flush_s)
    baseline = rows["full blocks only (peer)"][0]
    for name, (load, writes, added) in rows.items():
        at_risk = "255 (a block)" if "peer" in name else \
            f"{FLUSH_RATE_HZ * writer_module.FLUSH_INTERVAL_S:.0f} + one write"
        table.add_row(name, str(added), f"{load:.3f}", str(len(writes)), f"{max(writes, default=0) * 1e3:.1f}", at_risk,
                      f"{load / baseline:.2f}x")
    table.caption = ("peer: without a timed flush a block of 256 frames waits in memory (5 s at 50 Hz; an episode "
                     "shorter than a block is on disk only at its commit)")
    console.print(table)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--only", choices=["write", "sample", "flush"], help="run one part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="robot_rl_bench_") as tmp:
        work = Path(tmp)
        if args.only in (None, "write"):
            bench_write(work, args.quick)
        if args.only in (None, "sample"):
            bench_sample(work, args.quick)
        if args.only in (None, "flush"):
            bench_flush(work, args.quick)


if __name__ == "__main__":
    main()
