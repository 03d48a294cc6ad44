"""`robot-rl collect`: scripted demonstrations from a twin into a real store on disk."""
from __future__ import annotations

import pytest
import yaml

from robot_rl.cli.main import main
from robot_rl.datasets import TrajectoryReader, validate
from robot_rl.sim import make_env


def collect(tmp_path, *overrides):
    return main(["collect", f"run_dir={tmp_path / 'run'}", *overrides])


def test_collect_writes_a_valid_store_whose_spec_matches_the_env(tmp_path, capsys):
    out = tmp_path / "reach.zarr"
    assert collect(tmp_path, "robot=widowx", "task=reach", "episodes=3", f"out={out}", "cameras=[front]",
                   "image_size=[32,40]") == 0
    assert validate(out) == []
    reader = TrajectoryReader(out)
    env = make_env("widowx", "reach", cameras=("front",), image_size=(32, 40))
    assert reader.spec.to_dict() == env.embodiment.to_dict()
    info = reader.episode_info(0)
    assert info["source"] == "scripted" and info["instruction"] == env.instruction
    assert isinstance(info["success"], bool) and info["task"] == "reach"
    printed = capsys.readouterr().out
    for row in ("new episodes", "success rate", "frames", "size on disk"):
        assert row in printed
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["episodes"] == 3 and config["sim"]["dynamics"]["mass_scale"] == 1.0


def test_collect_appends_with_new_seeds_and_refuses_another_spec(tmp_path, capsys):
    out = tmp_path / "reach.zarr"
    assert collect(tmp_path, "robot=widowx", "task=reach", "episodes=2", f"out={out}") == 0
    assert collect(tmp_path, "robot=widowx", "task=reach", "episodes=1", f"out={out}") == 0
    reader = TrajectoryReader(out)
    assert reader.num_episodes == 3
    assert [reader.episode_info(i)["seed"] for i in range(3)] == [0, 1, 2]
    capsys.readouterr()
    assert collect(tmp_path, "robot=widowx", "task=reach", "episodes=1", f"out={out}", "cameras=[front]") == 2
    assert "different embodiment spec" in capsys.readouterr().err
    assert TrajectoryReader(out).num_episodes == 3, "a refused collect must keep every recorded episode"


def test_dynamics_preset_and_single_knobs_reach_the_twin(tmp_path):
    out = tmp_path / "perturbed.zarr"
    assert collect(tmp_path, "robot=widowx", "task=reach", "episodes=1", f"out={out}",
                   "sim.dynamics=perturbed", "sim.dynamics.action_latency=2") == 0
    dynamics = TrajectoryReader(out).episode_info(0)["dynamics"]
    assert dynamics["mass_scale"] == 1.4 and dynamics["action_latency"] == 2


@pytest.mark.parametrize("overrides,message", [
    (["robot=widowx", "task=reach", "episodes=1"], "needs out="),
    (["robot=ur5", "task=reach", "out=x.zarr"], "robot='ur5' is unknown"),
    (["robot=widowx", "task=fly", "out=x.zarr"], "task='fly' is unknown"),
    (["robot=widowx", "task=reach", "source=teleop", "out=x.zarr"], "recorder node"),
    (["robot=widowx", "task=reach", "out=x.zarr", "sim.dynamics=mars"], "sim/dynamics"),
    (["robot=widowx", "task=reach", "out=x.zarr", "cameras=[nope]"], "no camera"),
])
def test_bad_input_names_the_problem(tmp_path, capsys, overrides, message):
    assert collect(tmp_path, *overrides) == 2
    assert message in capsys.readouterr().err
