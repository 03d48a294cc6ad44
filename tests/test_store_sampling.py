"""Samplers over the on-disk store give exactly what they give over the same data in RAM."""
import numpy as np
import pytest

from robot_rl.datasets import codecs, frames
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.samplers import ChunkSampler, SequenceSampler, TransitionSampler
from store_helpers import expected_episode, tiny_spec, write_episodes


@pytest.fixture
def small_shards(monkeypatch):
    """Many small shards and room for only a few open ones, so every path of the reader runs."""
    monkeypatch.setattr(codecs, "MAX_SHARD_FRAMES", 16)
    monkeypatch.setattr(frames, "MAX_OPEN_SHARDS", 3)


@pytest.mark.parametrize("codec", ["zstd", "lz4", "raw", "jpeg"])
def test_disk_and_memory_sources_sample_the_same_batches(tmp_path, small_shards, codec):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 30, spec=tiny_spec(codec))
    disk = TrajectoryReader(path)
    assert disk.root["data/cam"].shards[0] == 16
    memory = disk.to_memory()
    for make in (lambda s: TransitionSampler(s, 64, n_step=3, seed=1),
                 lambda s: ChunkSampler(s, 64, horizon=4, seed=2),
                 lambda s: SequenceSampler(s, 64, history=3, horizon=2, seed=3)):
        for _ in range(3):
            a, b = make(disk).sample(), make(memory).sample()
            _assert_equal(a, b)


def test_frames_read_back_exactly_across_many_shards(tmp_path, small_shards):
    spec = tiny_spec()
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 30)
    reader = TrajectoryReader(path)
    expected = np.concatenate([expected_episode(spec, i)["cam"] for i in range(30)])
    rng = np.random.default_rng(0)
    for _ in range(5):
        indices = rng.integers(0, reader.num_steps, 100)
        np.testing.assert_array_equal(reader.gather("cam", indices), expected[indices])


def _assert_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_equal(a[key], b[key])
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
