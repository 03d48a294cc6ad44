"""``robot-rl data import`` / ``export`` end to end through the command line's entry point."""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl.cli.main import main
from robot_rl.datasets import TrajectoryReader


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "s.zarr"
    assert main(["data", "synth", str(path), "--episodes", "2", "--length", "6", "--cameras", "front",
                 "--size", "16x16"]) == 0
    return path


@pytest.mark.parametrize("out, extra", [("demos.hdf5", []), ("lr", ["--format", "lerobot", "--vcodec", "lossless"]),
                                        ("bag", ["--format", "mcap"])])
def test_export_then_import_round_trips(store, tmp_path, out, extra, capsys):
    assert main(["data", "export", str(store), str(tmp_path / out), *extra]) == 0
    assert main(["data", "import", str(tmp_path / out), str(tmp_path / "back.zarr")]) == 0  # format told from the input
    assert "episodes  2" in capsys.readouterr().out.replace("│", "")
    a, b = TrajectoryReader(store), TrajectoryReader(tmp_path / "back.zarr")
    # A bag is one time line: its episodes come back in time order (synth draws each episode's start at random).
    episodes_a = sorted((a.episode(i) for i in range(2)), key=lambda e: e["timestamp"][0])
    episodes_b = sorted((b.episode(i) for i in range(2)), key=lambda e: e["timestamp"][0])
    for ea, eb in zip(episodes_a, episodes_b):
        for key in a.spec.keys():
            if key == "timestamp" and out == "bag":  # stamps near 1e6 s: ROS keeps whole nanoseconds
                assert np.abs(ea[key] - eb[key]).max() <= 1e-9
            else:
                assert np.array_equal(ea[key], eb[key]), key


def test_bad_input_exits_2_with_the_fix(store, tmp_path, capsys):
    assert main(["data", "export", str(store), str(tmp_path / "out")]) == 2
    assert "pass --format" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    assert main(["data", "import", str(tmp_path / "junk"), str(store)]) == 2
    assert "cannot tell its format" in capsys.readouterr().err
    assert TrajectoryReader(store).num_episodes == 2
