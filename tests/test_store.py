"""Round trips through a real zarr store on disk: every key kind, metadata, stats, errors."""
import json

import numpy as np
import pytest

from robot_rl.datasets.errors import SpecMismatchError, StoreError, StoreLockedError
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.spec import CameraSpec, EmbodimentSpec, KeySpec
from robot_rl.datasets.writer import StoreWriter
from store_helpers import expected_episode, frames_of, tiny_spec, write_episodes


def every_dtype_spec() -> EmbodimentSpec:
    return EmbodimentSpec(
        name="every-dtype", control_rate_hz=5.0,
        action=KeySpec((7,), "float32", "normalized", -1, 1),
        state={
            "joints": KeySpec((6,), "float64", "rad"),
            "gripper": KeySpec((), "float32", "m"),
            "contacts": KeySpec((4,), "bool"),
            "mode": KeySpec((), "int32"),
            "counter": KeySpec((2,), "uint16"),
            "quat": KeySpec((4,), "float32", "wxyz"),
        },
        cameras={"lossless": CameraSpec(8, 10, codec="zstd"), "fast": CameraSpec(8, 10, codec="lz4"),
                 "jpeg": CameraSpec(32, 32, codec="jpeg", jpeg_quality=95)},
    )


def random_frame(spec, rng, last=False):
    frame = {}
    for key, s in spec.keys().items():
        if s.dtype == "bool":
            frame[key] = rng.random(s.shape) < 0.5
        elif s.dtype == "uint8":
            frame[key] = np.full(s.shape, rng.integers(0, 256), np.uint8)  # flat: JPEG keeps it exactly
        elif np.dtype(s.dtype).kind in "iu":
            frame[key] = rng.integers(0, 100, s.shape).astype(s.dtype)
        else:
            frame[key] = rng.normal(size=s.shape).astype(s.dtype)
    frame["terminated"], frame["truncated"] = False, last
    return frame


def test_round_trip_of_every_dtype_and_codec(tmp_path):
    spec = every_dtype_spec()
    rng = np.random.default_rng(0)
    written = []
    with StoreWriter.create(tmp_path / "s.zarr", spec) as store:
        for length in (1, 5, 300):  # 300 spans several flush blocks and low-dim chunks
            frames = [random_frame(spec, rng, last=(t == length - 1)) for t in range(length)]
            episode = store.new_episode(instruction="stack", source="teleop", operator="ada", tags=["a"])
            for frame in frames:
                episode.add(frame)
            episode.commit(success=True, note="free-form")
            written.append(frames)
    reader = TrajectoryReader(tmp_path / "s.zarr")
    assert reader.spec == spec
    assert reader.episode_ends.tolist() == [1, 6, 306]
    for index, frames in enumerate(written):
        episode = reader.episode(index)
        for key in spec.keys():
            expected = np.stack([np.asarray(f[key], spec.keys()[key].dtype) for f in frames])
            tolerance = 2 if key == "jpeg" else 0
            assert episode[key].dtype == expected.dtype, key
            np.testing.assert_allclose(episode[key].astype(float), expected.astype(float), atol=tolerance, err_msg=key)
    info = reader.episode_info(2)
    assert info["instruction"] == "stack" and info["operator"] == "ada" and info["tags"] == ["a"]
    assert info["success"] is True and info["note"] == "free-form" and info["source"] == "teleop"
    assert info["robot"] == "every-dtype" and info["control_rate_hz"] == 5.0 and not info["recovered"]


def test_frames_that_do_not_match_the_spec_are_refused_by_key_and_shape(tmp_path):
    spec = tiny_spec()
    with StoreWriter.create(tmp_path / "s.zarr", spec) as store:
        episode = store.new_episode()
        good = next(frames_of(spec, 0))
        with pytest.raises(SpecMismatchError, match=r"'state': expected shape \(14,\), found \(13,\)"):
            episode.add({**good, "state": np.zeros(13, np.float32)})
        with pytest.raises(SpecMismatchError, match=r"'cam': expected dtype uint8, found float32"):
            episode.add({**good, "cam": np.zeros((12, 16, 3), np.float32)})
        with pytest.raises(SpecMismatchError, match=r"missing \['action'\]"):
            episode.add({k: v for k, v in good.items() if k != "action"})
        with pytest.raises(SpecMismatchError, match=r"unknown \['extra'\]"):
            episode.add({**good, "extra": 1})
        episode.add({**good, "state": good["state"].astype(np.float64)})  # same-kind cast is fine
        episode.commit()
    assert TrajectoryReader(tmp_path / "s.zarr").num_steps == 1


def test_discard_leaves_nothing_and_commit_marks_the_end(tmp_path):
    spec = tiny_spec()
    path = tmp_path / "s.zarr"
    with StoreWriter.create(path, spec) as store:
        episode = store.new_episode()
        for _ in range(40):
            episode.add({**next(frames_of(spec, 1)), "truncated": False, "terminated": False})
        episode.discard()
        assert store.tail_rows() == 0
        with pytest.raises(StoreError, match="already committed or discarded"):
            episode.add(next(frames_of(spec, 1)))
        with pytest.raises(StoreError, match="no frames"):
            store.new_episode().commit()
    reader = TrajectoryReader(path)
    assert reader.num_episodes == 0
    with StoreWriter(path) as store:
        episode = store.new_episode()
        for _ in range(3):
            episode.add({**next(frames_of(spec, 1)), "truncated": False, "terminated": False})
        episode.commit()
    reader.refresh()
    assert reader.column("truncated").tolist() == [False, False, True]  # an end is always marked


def test_second_writer_is_refused(tmp_path):
    path = tmp_path / "s.zarr"
    with StoreWriter.create(path, tiny_spec()):
        with pytest.raises(StoreLockedError, match="already open for writing"):
            StoreWriter(path)
    StoreWriter(path).close()  # released on close


def test_existing_store_is_not_replaced_by_create(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 2)
    with pytest.raises(StoreError, match="already exists"):
        StoreWriter.create(path, tiny_spec())
    assert TrajectoryReader(path).num_episodes == 2


def test_statistics_match_numpy_and_survive_reopening(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 4)
    write_episodes(path, 4, 5)  # a second writer session merges into the saved statistics
    reader = TrajectoryReader(path)
    for key in ("state", "action", "reward"):
        column = reader.column(key).astype(np.float64)
        s = reader.stats()[key]
        assert s["count"] == len(column)
        np.testing.assert_allclose(s["mean"], column.mean(0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(s["std"], column.std(0), rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(s["min"], column.min(0))
        np.testing.assert_array_equal(s["max"], column.max(0))
        np.testing.assert_allclose(s["p01"], np.percentile(column, 1, axis=0), atol=1e-6)  # exact below the sample cap


def test_episode_metadata_must_be_json(tmp_path):
    with StoreWriter.create(tmp_path / "s.zarr", tiny_spec()) as store:
        with pytest.raises(TypeError):
            store.new_episode(calibration=object())
        with pytest.raises(ValueError, match="source must be one of"):
            store.new_episode(source="dream")


def test_remote_url_round_trip_and_lock():
    """An fsspec URL (the in-memory filesystem stands in for s3://: same code path, no network)."""
    url = "memory://robot_rl_test/remote.zarr"
    spec = tiny_spec()
    with StoreWriter.create(url, spec, overwrite=True) as store:
        with pytest.raises(StoreLockedError, match="--break-lock"):
            StoreWriter(url)
        episode = store.new_episode()
        for frame in frames_of(spec, 3):
            episode.add(frame)
        episode.commit()
    reader = TrajectoryReader(url)
    for key, values in expected_episode(spec, 3).items():
        np.testing.assert_array_equal(reader.episode(0)[key], values)
    assert json.loads(json.dumps(reader.episode_info(0)))["source"] == "teleop"


def test_reader_never_serves_frames_of_a_discarded_episode(tmp_path):
    """The shard being appended to is re-read: frames of a discarded episode once stood where the
    next committed episode's frames now are."""
    spec = tiny_spec()
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 1)
    reader = TrajectoryReader(path)
    reader.episode(0)  # the reader has now looked at the shard that is still being filled
    with StoreWriter(path) as store:
        discarded = store.new_episode()
        for frame in frames_of(spec, 7):
            discarded.add(frame)
        store._flusher.wait()  # its frames are on disk, in the same shard
        reader.episode(0)
        discarded.discard()
        kept = store.new_episode()
        for frame in frames_of(spec, 1):
            kept.add(frame)
        kept.commit()
    reader.refresh()
    np.testing.assert_array_equal(reader.episode(1)["cam"], expected_episode(spec, 1)["cam"])


def test_frames_reach_disk_within_the_flush_interval_without_another_frame(tmp_path, monkeypatch):
    """A recorder that stops sending (paused, or about to be killed) still gets its frames written and
    marked: the flusher's timer hands a partial block over FLUSH_INTERVAL_S after its first frame."""
    import time

    from robot_rl.datasets import writer as writer_module

    monkeypatch.setattr(writer_module, "FLUSH_INTERVAL_S", 0.05)
    spec = tiny_spec()
    with StoreWriter.create(tmp_path / "s.zarr", spec) as store:
        episode = store.new_episode()
        frames = list(frames_of(spec, 5))
        for frame in frames[:3]:
            episode.add({**frame, "truncated": False})
        deadline = time.monotonic() + 10.0
        while store.salvageable_rows() < 3:  # no further add: only the timer can write them
            assert time.monotonic() < deadline, "the partial block was never written"
            time.sleep(0.01)
        episode.add({**frames[3], "truncated": False})
        episode.commit()
    assert TrajectoryReader(tmp_path / "s.zarr").episode_ends.tolist() == [4]


def test_a_failed_background_write_surfaces_and_loses_only_that_episode(tmp_path, monkeypatch):
    """A disk that fails mid-episode (simulated: as root, permissions cannot make a real write fail)."""
    from robot_rl.datasets import writer as writer_module

    spec = tiny_spec()
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 2)
    real_write = writer_module._Flusher._write

    def failing_write(self, start, block):
        raise OSError(28, "No space left on device")

    with StoreWriter(path) as store:
        monkeypatch.setattr(writer_module._Flusher, "_write", failing_write)
        episode = store.new_episode()
        for frame in frames_of(spec, 9):
            episode.add({**frame, "truncated": False})
        with pytest.raises(StoreError, match="No space left on device.*committed episodes are intact"):
            episode.commit()
        episode.discard()
        monkeypatch.setattr(writer_module._Flusher, "_write", real_write)
        episode = store.new_episode()
        for frame in frames_of(spec, 2):
            episode.add(frame)
        episode.commit()
    reader = TrajectoryReader(path)
    assert reader.num_episodes == 3
    np.testing.assert_array_equal(reader.episode(2)["cam"], expected_episode(spec, 2)["cam"])
