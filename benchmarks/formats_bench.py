"""Converter benchmark: import and export rates (frames/s) for 3 cameras at 480 x 640 + 14-D state +
7-D action, each beside the format's own library doing the same work.

    python benchmarks/formats_bench.py                       # 2 episodes of 45 frames (about a minute)
    python benchmarks/formats_bench.py --frames 300          # longer episodes
    python benchmarks/formats_bench.py --lerobot-python /path/to/python   # also lerobot's own writer/reader

| format    | ours (robot-rl data ...)                     | peer, same frames in memory                        |
|-----------|----------------------------------------------|----------------------------------------------------|
| robomimic | export: store -> HDF5; import: HDF5 -> store | h5py writes / reads the same datasets (lzf)        |
| lerobot   | export: store -> parquet + AV1 video;        | PyAV encodes / decodes the same frames (AV1, as    |
|           | import: back (decode, then the store write)  | lerobot does) + pyarrow writes / reads the table   |
|           |                                              | (with --lerobot-python: LeRobotDataset itself)     |
| mcap      | export: store -> rosbag2 MCAP (rosbags);     | the mcap package's ROS 2 writer / decoding reader  |
|           | import: aligned onto the control grid        | over the same messages (uncompressed chunks)       |

Ours reads (export) or writes (import) the zarr store besides; the peer starts from frames already in
memory (export) or stops at decoded arrays (import). Prints tables; passes or fails nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.synthetic import SyntheticEpisodes, synthetic_spec
from robot_rl.datasets.writer import StoreWriter

console = Console(width=140)
CAMERAS = ("front", "wrist", "side")
T0 = 1_796_000_000.0


def make_store(path, episodes: int, length: int) -> dict[str, np.ndarray]:
    """The source store, and its frames in memory (for the peers)."""
    spec = synthetic_spec(cameras=CAMERAS, height=480, width=640, control_rate_hz=30.0)
    source = SyntheticEpisodes(spec, seed=0)
    rows = []
    with StoreWriter.create(path, spec) as writer:
        for e in range(episodes):
            episode = writer.new_episode(instruction="stack the blocks", source="teleop")
            for t, frame in enumerate(source.frames(length)):
                frame = {**frame, "timestamp": T0 + 100 * e + t / 30}
                episode.add(frame)
                rows.append(frame)
            episode.commit(success=True)
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def write_frames(path, spec, data, episodes: int, length: int) -> None:
    """What every import ends with: the frames, already in memory, written into a new store."""
    with StoreWriter.create(path, spec) as writer:
        for e in range(episodes):
            episode = writer.new_episode(source="teleop")
            for t in range(e * length, (e + 1) * length):
                episode.add({key: values[t] for key, values in data.items()})
            episode.commit()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- peers ------------------------------------------------------------------------------------------

def h5py_write(path, data, episodes, length):
    import h5py

    with h5py.File(path, "w") as f:
        for e in range(episodes):
            rows = slice(e * length, (e + 1) * length)
            demo = f.create_group(f"data/demo_{e}")
            for key in ("state", *CAMERAS):
                image = key in CAMERAS
                chunks = (1, *data[key].shape[1:]) if image else None
                demo.create_dataset(f"obs/{key}", data=data[key][rows], chunks=chunks, compression="lzf")
            for name, key in (("actions", "action"), ("rewards", "reward"), ("dones", "terminated")):
                demo.create_dataset(name, data=data[key][rows], compression="lzf")


def h5py_read(path):
    import h5py

    with h5py.File(path, "r") as f:
        for demo in f["data"].values():
            for key in demo["obs"]:
                demo[f"obs/{key}"][:]
            demo["actions"][:]


def pyav_pyarrow_write(root, data):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from robot_rl.datasets.formats.video import VideoWriter

    root.mkdir(parents=True)
    for cam in CAMERAS:
        writer = VideoWriter(root / f"{cam}.mp4", 30.0, 480, 640, "av1")
        for frame in data[cam]:
            writer.add(frame)
        writer.close()
    table = pa.table({key: pa.FixedSizeListArray.from_arrays(pa.array(data[key].reshape(-1)), data[key].shape[1])
                      for key in ("state", "action")} | {"reward": pa.array(data["reward"])})
    pq.write_table(table, root / "data.parquet")


def pyav_pyarrow_read(root, frames):
    import pyarrow.parquet as pq

    from robot_rl.datasets.formats.video import VideoReader

    pq.read_table(root / "data.parquet")
    for cam in CAMERAS:
        VideoReader(root / f"{cam}.mp4", 30.0, cam).read(0, frames)


HEADER_MSGDEF = """
================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec"""
MSGDEFS = {
    "sensor_msgs/msg/Image": "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
                             "uint8 is_bigendian\nuint32 step\nuint8[] data",
    "sensor_msgs/msg/JointState": "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\n"
                                  "float64[] effort",
}


def mcap_write(path, data):
    from mcap.writer import CompressionType
    from mcap_ros2.writer import Writer

    from robot_rl.datasets.formats.mcap import to_nanoseconds

    with open(path, "wb") as f:
        writer = Writer(f, compression=CompressionType.NONE)
        schemas = {name: writer.register_msgdef(name.replace("/msg/", "/"), text + HEADER_MSGDEF)
                   for name, text in MSGDEFS.items()}
        for t, stamp in enumerate(data["timestamp"].tolist()):
            ns = to_nanoseconds(stamp)
            header = {"stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}, "frame_id": ""}
            for cam in CAMERAS:
                writer.write_message(f"{cam}/image_raw", schemas["sensor_msgs/msg/Image"],
                                     {"header": header, "height": 480, "width": 640, "encoding": "rgb8",
                                      "is_bigendian": 0, "step": 1920, "data": data[cam][t].tobytes()}, log_time=ns)
            for topic, key in (("state", "state"), ("ee_command_applied", "action")):
                writer.write_message(topic, schemas["sensor_msgs/msg/JointState"],
                                     {"header": header, "name": [], "position": data[key][t].astype(float).tolist(),
                                      "velocity": [], "effort": []}, log_time=ns)
        writer.finish()


def mcap_read(path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(path, "rb") as f:
        for _ in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            pass


LEROBOT_SCRIPT = r'''
import json, sys, time
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
data = np.load(sys.argv[1])
episodes, length, root = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cams = ("front", "wrist", "side")
features = {"observation.state": {"dtype": "float32", "shape": (14,), "names": None},
            "action": {"dtype": "float32", "shape": (7,), "names": None},
            **{f"observation.images.{c}": {"dtype": "video", "shape": (480, 640, 3), "names": ["height", "width", "channels"]} for c in cams}}
start = time.perf_counter()
ds = LeRobotDataset.create("local/bench", fps=30, features=features, root=root, robot_type="synthetic")
for e in range(episodes):
    for t in range(e * length, (e + 1) * length):
        ds.add_frame({"observation.state": data["state"][t], "action": data["action"][t], "task": "stack the blocks",
                      **{f"observation.images.{c}": data[c][t] for c in cams}})
    ds.save_episode()
ds.finalize()
write_s = time.perf_counter() - start
print(json.dumps({"write_s": write_s}))
'''


def lerobot_peer(python, data, episodes, length, tmp) -> float | None:
    np.savez(tmp / "frames.npz", **{k: data[k] for k in ("state", "action", *CAMERAS)})
    done = subprocess.run([python, "-c", LEROBOT_SCRIPT, str(tmp / "frames.npz"), str(episodes), str(length),
                           str(tmp / "lerobot_own")], cwd=tmp, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": ""})
    if done.returncode != 0:
        console.print(f"[yellow]lerobot peer failed:[/] {done.stderr[-500:]}")
        return None
    return json.loads(done.stdout.splitlines()[-1])["write_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=45, help="frames per episode")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--lerobot-python", help="a Python with lerobot installed: time LeRobotDataset's own writer")
    args = parser.parse_args()
    from robot_rl.datasets.formats.lerobot import export_lerobot, import_lerobot
    from robot_rl.datasets.formats.mcap import export_mcap
    from robot_rl.datasets.formats.robomimic import export_robomimic, import_robomimic
    from robot_rl.drivers.bag_import import import_bag

    with tempfile.TemporaryDirectory(prefix="formats_bench_") as tmp:
        tmp = Path(tmp)
        n = args.frames * args.episodes
        console.print(f"{args.episodes} episodes x {args.frames} frames, 3 cameras 480x640 + 14-D state + 7-D action")
        data = make_store(tmp / "src.zarr", args.episodes, args.frames)
        spec = TrajectoryReader(tmp / "src.zarr").spec
        store_s = timed(lambda: write_frames(tmp / "written.zarr", spec, data, args.episodes, args.frames))
        rows = []
        # robomimic
        ours_out = timed(lambda: export_robomimic(tmp / "src.zarr", tmp / "demos.hdf5"))
        ours_in = timed(lambda: import_robomimic(tmp / "demos.hdf5", tmp / "rm.zarr"))
        peer_out = timed(lambda: h5py_write(tmp / "peer.hdf5", data, args.episodes, args.frames))
        peer_in = timed(lambda: h5py_read(tmp / "peer.hdf5"))
        rows.append(("robomimic", "h5py", ours_out, peer_out, ours_in, peer_in))
        # LeRobot
        ours_out = timed(lambda: export_lerobot(tmp / "src.zarr", tmp / "lr"))
        ours_in = timed(lambda: import_lerobot(tmp / "lr", tmp / "lr.zarr"))
        peer_out = timed(lambda: pyav_pyarrow_write(tmp / "peer_lr", data))
        peer_in = timed(lambda: pyav_pyarrow_read(tmp / "peer_lr", n))
        rows.append(("lerobot (AV1)", "PyAV + pyarrow", ours_out, peer_out, ours_in, peer_in))
        back = TrajectoryReader(tmp / "lr.zarr").gather("front", np.arange(n))
        mse = np.mean((back.astype(np.float64) - data["front"]) ** 2)
        psnr = 10 * np.log10(255**2 / mse)
        if args.lerobot_python:
            own = lerobot_peer(args.lerobot_python, data, args.episodes, args.frames, tmp)
            if own is not None:
                rows.append(("lerobot (AV1)", "LeRobotDataset", rows[-1][2], own, None, None))
        # MCAP
        ours_out = timed(lambda: export_mcap(tmp / "src.zarr", tmp / "bag"))
        ours_in = timed(lambda: import_bag(tmp / "bag", tmp / "bag.zarr"))
        peer_out = timed(lambda: mcap_write(tmp / "peer.mcap", data))
        peer_in = timed(lambda: mcap_read(tmp / "peer.mcap"))
        rows.append(("rosbag2 MCAP", "mcap + mcap_ros2", ours_out, peer_out, ours_in, peer_in))

    table = Table(title=f"frames/s, {n} frames of 3 x 480x640 cameras (higher is better; ratio = ours / peer)")
    for column in ("format", "peer", "export", "peer write", "ratio", "import", "peer read", "ratio"):
        table.add_column(column, justify="left" if column in ("format", "peer") else "right")
    rate = lambda s: f"{n / s:.1f}" if s else "-"  # noqa: E731
    ratio = lambda a, b: f"{b / a:.2f}x" if a and b else "-"  # noqa: E731
    for fmt, peer, out_s, peer_out_s, in_s, peer_in_s in rows:
        table.add_row(fmt, peer, rate(out_s), rate(peer_out_s), ratio(out_s, peer_out_s),
                      rate(in_s), rate(peer_in_s), ratio(in_s, peer_in_s))
    console.print(table)
    console.print(f"Every import ends by writing the store (cameras zstd): the same frames from memory write at "
                  f"{n / store_s:.1f} frames/s here. LeRobot AV1 round trip: camera PSNR {psnr:.1f} dB "
                  "(every other key bit-exact).")


if __name__ == "__main__":
    main()
