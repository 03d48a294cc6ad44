"""The prefetch thread yields the sampler's own batches, refreshes between batches, and re-raises."""
import numpy as np
import pytest

from robot_rl.datasets.prefetch import Prefetcher
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.samplers import TransitionSampler
from store_helpers import write_episodes


def test_prefetched_batches_equal_direct_ones_and_refresh_reaches_new_episodes(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 3)
    direct = TransitionSampler(TrajectoryReader(path), 32, seed=7)
    expected = [direct.sample() for _ in range(3)]
    with Prefetcher(TransitionSampler(TrajectoryReader(path), 32, seed=7), depth=1) as prefetcher:
        for want in expected:
            got = prefetcher.sample()
            np.testing.assert_array_equal(got["index"], want["index"])
            np.testing.assert_array_equal(got["obs"]["cam"], want["obs"]["cam"])
        write_episodes(path, 3, 6)
        old_steps = int(direct.source.episode_ends[-1])
        prefetcher.refresh()
        newest = 0
        for _ in range(50):  # batches already queued predate the refresh
            newest = max(newest, int(prefetcher.sample()["index"].max()))
        assert newest >= old_steps


def test_an_error_in_the_thread_reaches_the_consumer():
    class Broken:
        def sample(self):
            raise ValueError("source has 0 episodes")

        def refresh(self):
            return 0

    with Prefetcher(Broken()) as prefetcher:
        with pytest.raises(ValueError, match="0 episodes"):
            prefetcher.sample()
