"""rosbag2 MCAP both ways. A store -> MCAP -> store round trip keeps every key bit-exact (wall-clock
timestamps survive integer-nanosecond stamps exactly); the `mcap` package with its ROS 2 decoder (what
Foxglove reads) decodes the exported bag; a bag of the driver topics as ``ros2 bag record`` writes them
(joint states at 50 Hz, a camera at 15 Hz of another size, jittered commands at 5 Hz, episode events)
imports onto the control grid exactly as the recorder aligns rows; bad input leaves the store untouched."""
from __future__ import annotations

import json

import numpy as np
import pytest

from robot_rl.datasets import (
    CameraSpec,
    EmbodimentSpec,
    KeySpec,
    SpecMismatchError,
    StoreError,
    StoreWriter,
    TrajectoryReader,
    create_store,
)
from robot_rl.datasets.formats.mcap import export_mcap, to_nanoseconds, typestore
from robot_rl.datasets.synthetic import SyntheticEpisodes, synthetic_spec
from robot_rl.drivers.bag_import import import_bag
from store_helpers import contents

T0 = 1_796_000_000.0  # wall-clock seconds, as the recorder stamps rows


@pytest.fixture
def store(tmp_path):
    """Three episodes one after another in time, a 24x32 camera, labelled and unlabelled success."""
    path = tmp_path / "src.zarr"
    spec = synthetic_spec(cameras=("front",), height=24, width=32, control_rate_hz=5)
    episodes = SyntheticEpisodes(spec, seed=2)
    with StoreWriter.create(path, spec) as writer:
        for i, length in enumerate((6, 9, 4)):
            episode = writer.new_episode(instruction=f"task {i}", source="teleop", operator="ada")
            for t, frame in enumerate(episodes.frames(length, terminated=i == 1)):
                episode.add({**frame, "timestamp": T0 + 10 * i + t * 0.2 + 0.003 * (t % 3)})
            episode.commit(success=[True, False, None][i])
    return path


def test_round_trip_is_bit_exact(store, tmp_path):
    calls = []
    assert export_mcap(store, tmp_path / "bag", progress=lambda d, n: calls.append((d, n))) == 3
    assert calls[-1] == (19, 19)
    report = import_bag(tmp_path / "bag", tmp_path / "back.zarr")
    assert report.kept == 3 and not report.discarded and not report.refused
    (a, infos_a, ra), (b, infos_b, rb) = contents(store), contents(tmp_path / "back.zarr")
    assert ra.spec.to_dict() == rb.spec.to_dict() and infos_a == infos_b
    assert np.array_equal(ra.episode_ends, rb.episode_ends)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key


def test_mcap_reader_decodes_the_export(store, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    export_mcap(store, tmp_path / "bag", episodes=[1])
    (path,) = (tmp_path / "bag").glob("*.mcap")
    episode = TrajectoryReader(store).episode(1)
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        schemas = {c.topic: summary.schemas[c.schema_id] for c in summary.channels.values()}
        assert schemas["front/image_raw"].name == "sensor_msgs/msg/Image" and schemas["front/image_raw"].encoding == "ros2msg"
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        by_topic: dict[str, list] = {}
        for _, channel, message, decoded in reader.iter_decoded_messages():
            assert message.log_time == decoded_stamp(decoded, message.log_time)
            by_topic.setdefault(channel.topic, []).append(decoded)
    assert [m.data for m in by_topic["episode_control"]] == ["start", "stop"]
    assert json.loads(by_topic["robot_rl/episode_info"][0].data)["instruction"] == "task 1"
    images = np.stack([np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width, 3) for m in by_topic["front/image_raw"]])
    assert np.array_equal(images, episode["front"])
    assert np.array_equal(np.array([m.position for m in by_topic["ee_command_applied"]], np.float32), episode["action"])
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in by_topic["ee_command_applied"]]
    assert np.array_equal(np.array(stamps), episode["timestamp"])
    status = by_topic["task_status"]
    assert list(status[0].name) == ["reward", "success", "failure", "terminated"] and status[-1].position[3] == 1.0


def decoded_stamp(msg, default: int) -> int:
    header = getattr(msg, "header", None)
    return default if header is None else header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


# --- a bag of the driver topics -------------------------------------------------------------------------

WIDOWX_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")


def widowx_spec() -> EmbodimentSpec:
    return EmbodimentSpec(name="widowx", control_rate_hz=5.0, action=KeySpec((7,), "float32"),
                          state={"state": KeySpec((14,), "float32")}, cameras={"front": CameraSpec(24, 32)})


def driver_bag(path, *, cut_camera_at: float | None = None, events: bool = True) -> dict:
    """Driver topics as ros2 bag record writes them; returns what was published, for the expected rows."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from robot_rl.drivers.proprio import proprio_builder

    store, rng = typestore(), np.random.default_rng(3)
    types = store.types
    sent = {"joints": [], "frames": [], "commands": []}

    def header(t):
        ns = to_nanoseconds(t)
        return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                             frame_id="")

    messages = []
    for k in range(int(4.0 * 50)):  # joint states at 50 Hz for 4 s
        t = T0 + k / 50
        q = np.concatenate([0.3 * np.sin(t - T0 + np.arange(6)), [0.012]])
        messages.append((t, "joint_states", "sensor_msgs/msg/JointState", types["sensor_msgs/msg/JointState"](
            header=header(t), name=list(WIDOWX_JOINTS), position=q, velocity=np.zeros(0), effort=np.zeros(0))))
        sent["joints"].append((t, q))
    for k in range(int(4.0 * 15)):  # a 60x64 camera (taller than the spec's 3:4) at 15 Hz, arriving 30 ms late
        t = T0 + 0.01 + k / 15
        if cut_camera_at is not None and t > cut_camera_at:
            break
        image = rng.integers(0, 255, (60, 64, 3), dtype=np.uint8)
        messages.append((t + 0.03, "front/image_raw", "sensor_msgs/msg/Image", types["sensor_msgs/msg/Image"](
            header=header(t), height=60, width=64, encoding="rgb8", is_bigendian=0, step=192, data=image.reshape(-1))))
        sent["frames"].append((t, image))
    for k in range(int(4.0 * 5)):  # applied commands at 5 Hz with a few ms of jitter
        t = T0 + 0.05 + k / 5 + rng.uniform(0, 0.004)
        action = rng.uniform(-1, 1, 7)
        messages.append((t + 0.002, "ee_command_applied", "sensor_msgs/msg/JointState", types["sensor_msgs/msg/JointState"](
            header=header(t), name=[], position=action, velocity=np.zeros(0), effort=np.zeros(0))))
        sent["commands"].append((t, action))
    sent["start"], sent["stop"] = T0 + 0.5, T0 + 3.3
    for t, kind in ((sent["start"], "start"), (sent["stop"], "stop")) if events else ():
        messages.append((t, "episode_control", "std_msgs/msg/String", types["std_msgs/msg/String"](data=kind)))
    messages.sort(key=lambda m: m[0])
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as bag:
        connections = {}
        for t, topic, msgtype, msg in messages:
            if topic not in connections:
                connections[topic] = bag.add_connection(topic, msgtype, typestore=store)
            bag.write(connections[topic], to_nanoseconds(t), store.serialize_cdr(msg, msgtype))
    sent["proprio"] = proprio_builder("widowx")
    return sent


def latest(samples, t):
    stamps = [s for s, _ in samples]
    i = int(np.searchsorted(stamps, t, side="right")) - 1
    return samples[i]


def test_driver_bag_aligns_like_the_recorder(tmp_path):
    import cv2

    create_store(tmp_path / "like.zarr", widowx_spec())
    sent = driver_bag(tmp_path / "bag")
    report = import_bag(tmp_path / "bag", tmp_path / "out.zarr", spec_from=tmp_path / "like.zarr",
                        instruction="pick the cube")
    data, infos, reader = contents(tmp_path / "out.zarr")
    assert report.kept == 1 and infos[0]["instruction"] == "pick the cube" and infos[0]["ended_by"] == "stop"
    # Rows: the commands after the start and before the stop, from the first one every stream has seen since.
    first_seen = max(next(t for t, _ in sent[k] if t > sent["start"]) for k in ("joints", "frames"))
    rows = [(t, a) for t, a in sent["commands"] if sent["start"] < t < sent["stop"] and t >= first_seen]
    assert len(data["action"]) == len(rows)
    assert np.array_equal(data["timestamp"], [t for t, _ in rows])
    assert np.array_equal(data["action"], np.array([a for _, a in rows], np.float32))
    for i, (t, _) in enumerate(rows):
        _, q = latest(sent["joints"], t)
        assert np.array_equal(data["state"][i], sent["proprio"](WIDOWX_JOINTS, q))
        _, image = latest(sent["frames"], t)
        assert np.array_equal(data["front"][i], cv2.resize(image[6:54], (32, 24), interpolation=cv2.INTER_AREA))
    assert data["truncated"][-1] and not data["terminated"].any() and not data["reward"].any()


def test_bag_without_events_is_one_episode(tmp_path):
    create_store(tmp_path / "like.zarr", widowx_spec())
    sent = driver_bag(tmp_path / "bag", events=False)
    assert import_bag(tmp_path / "bag", tmp_path / "out.zarr", spec_from=tmp_path / "like.zarr").kept == 1
    data, _, _ = contents(tmp_path / "out.zarr")
    assert np.array_equal(data["timestamp"], [t for t, _ in sent["commands"]])


def test_stale_camera_discards_the_episode(tmp_path):
    create_store(tmp_path / "like.zarr", widowx_spec())
    driver_bag(tmp_path / "bag", cut_camera_at=T0 + 2.0)
    report = import_bag(tmp_path / "bag", tmp_path / "out.zarr", spec_from=tmp_path / "like.zarr")
    assert report.kept == 0 and "front/image_raw" in report.discarded[0]


def test_truncated_bag_leaves_store_untouched(store, tmp_path):
    export_mcap(store, tmp_path / "bag")
    (path,) = (tmp_path / "bag").glob("*.mcap")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    other = tmp_path / "other.zarr"
    export_mcap(store, tmp_path / "bag2", episodes=[0])
    import_bag(tmp_path / "bag2", other)
    before = contents(other)
    with pytest.raises(StoreError, match="truncated"):
        import_bag(tmp_path / "bag", other)
    after = contents(other)
    assert before[1] == after[1] and all(np.array_equal(before[0][k], after[0][k]) for k in before[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "bag2", "other.zarr", "src.zarr"]


def test_mismatched_spec_is_refused(store, tmp_path):
    export_mcap(store, tmp_path / "bag")
    create_store(tmp_path / "widowx.zarr", widowx_spec())
    with pytest.raises(SpecMismatchError, match="another embodiment spec"):
        import_bag(tmp_path / "bag", tmp_path / "widowx.zarr")
    assert TrajectoryReader(tmp_path / "widowx.zarr").num_episodes == 0


def test_bag_without_a_spec_asks_for_one(tmp_path):
    driver_bag(tmp_path / "bag")
    with pytest.raises(SpecMismatchError, match="--spec-from"):
        import_bag(tmp_path / "bag", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()
