"""Robot and task on the command line, one rule in every verb (robot_rl.cli.config.resolve_task): without
``task=`` a job runs the robot's default task (``default_task`` in its definition), a given task wins, and
``task=<robot>_<task>`` names both. Real configs, real checks, real (tiny) collect and train runs."""
from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from robot_rl.cli.checks import check_config
from robot_rl.cli.collect import make_env_and_expert
from robot_rl.cli.config import load_config
from robot_rl.cli.main import main as cli
from robot_rl.cli.train import resolve_run
from robot_rl.datasets import TrajectoryReader
from robot_rl.drivers.robot import ROBOTS, default_task

DEFAULTS = [("widowx", "reach"), ("franka", "lift"), ("rc_car", "goal")]


def test_the_expected_defaults_are_the_robot_definitions():
    assert {robot: default_task(robot) for robot in ROBOTS} == dict(DEFAULTS)


def resolved(verb: str, tmp_path, *overrides: str):
    """The verb's config as its `run` resolves it, then checked as its `run` checks it."""
    overrides = [*overrides, f"run_dir={tmp_path / 'run'}"]
    if verb == "train":
        cfg = resolve_run(overrides)
    else:
        overrides.append(f"out={tmp_path / 'out.zarr'}")
        cfg = load_config(verb, overrides)
    check_config(verb, overrides, cfg, robots_extra=("robosuite",) if verb == "collect" else ())
    return cfg


@pytest.mark.parametrize("verb", ["train", "collect"])
@pytest.mark.parametrize("robot, task", DEFAULTS)
def test_without_a_task_train_and_collect_run_the_robots_default_task(tmp_path, verb, robot, task):
    cfg = resolved(verb, tmp_path, f"robot={robot}")
    assert (cfg.robot, cfg.task) == (robot, task)


@pytest.mark.parametrize("verb", ["train", "collect"])
def test_without_robot_or_task_the_widowxs_default_task(tmp_path, verb):
    cfg = resolved(verb, tmp_path)
    assert (cfg.robot, cfg.task) == ("widowx", "reach")


@pytest.mark.parametrize("verb", ["train", "collect"])
@pytest.mark.parametrize("overrides, robot, task", [
    (["robot=widowx", "task=pick_place"], "widowx", "pick_place"),
    (["task=pick_place"], "widowx", "pick_place"),
    (["robot=franka", "task=peg_insert"], "franka", "peg_insert"),
    (["task=franka_peg_insert"], "franka", "peg_insert"),          # robot and task in one
    (["task=widowx_pick_place"], "widowx", "pick_place"),
    (["robot=rc_car", "task=rc_car_goal"], "rc_car", "goal"),
    (["robot=widowx", "task=franka_lift"], "franka", "lift"),      # the combined form names the robot
])
def test_a_given_task_wins_in_either_form(tmp_path, verb, overrides, robot, task):
    cfg = resolved(verb, tmp_path, *overrides)
    assert (cfg.robot, cfg.task) == (robot, task)


def test_collect_from_robosuite_defaults_to_its_lift(tmp_path):
    cfg = resolved("collect", tmp_path, "robot=robosuite")
    assert (cfg.robot, cfg.task) == ("robosuite", "Lift")
    assert resolved("collect", tmp_path, "robot=robosuite", "task=Lift").task == "Lift"


def test_collect_from_robosuite_with_an_unknown_task_names_its_tasks(tmp_path):
    cfg = resolved("collect", tmp_path, "robot=robosuite", "task=Stack")
    with pytest.raises(ValueError, match=r"task='Stack': robosuite tasks with a scripted expert are \['Lift'\]"):
        make_env_and_expert(cfg)


def test_eval_keeps_task_null_for_the_checkpoints_task():
    assert load_config("eval", ["checkpoint=runs/x"]).task is None


def test_a_resumed_run_keeps_its_saved_task(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    OmegaConf.save(resolve_run(["task=franka_peg_insert", f"run_dir={run}"]), run / "config.yaml")
    cfg = resolve_run(["resume=true", f"run_dir={run}"])  # task: null in train.yaml does not replace it
    assert (cfg.robot, cfg.task) == ("franka", "peg_insert")


@pytest.mark.parametrize("verb", ["train", "collect"])
@pytest.mark.parametrize("overrides, unknown, robot, tasks", [
    (["robot=franka", "task=reach"], "reach", "franka", "['lift', 'peg_insert']"),
    (["robot=rc_car", "task=pick_place"], "pick_place", "rc_car", "['goal']"),
    (["task=franka_fly"], "fly", "franka", "['lift', 'peg_insert']"),
])
def test_an_unknown_task_names_the_robots_tasks(tmp_path, capsys, verb, overrides, unknown, robot, tasks):
    run = tmp_path / "run"
    extra = [f"out={tmp_path / 'out.zarr'}"] if verb == "collect" else []
    assert cli([verb, *overrides, *extra, f"run_dir={run}"]) == 2
    err = capsys.readouterr().err
    assert f"task={unknown!r} is unknown for robot {robot!r}: expected one of {tasks}" in err, err
    assert not run.exists() and not (tmp_path / "out.zarr").exists()


def test_collect_without_a_task_records_the_robots_default_task(tmp_path):
    out, run = tmp_path / "car.zarr", tmp_path / "run"
    assert cli(["collect", "robot=rc_car", "episodes=1", "max_steps=5", f"out={out}", f"run_dir={run}"]) == 0
    assert TrajectoryReader(out).episode_info(0)["task"] == "goal"
    assert yaml.safe_load((run / "config.yaml").read_text())["task"] == "goal"


def test_train_without_a_task_trains_the_robots_default_task(tmp_path):
    run = tmp_path / "run"
    assert cli(["train", "robot=franka", "algo=sac", "algo.agent.hidden=[16,16]", "algo.batch_size=8",
                "algo.schedule.random_steps=8", "algo.schedule.online_steps=16", "max_steps=8", "eval.episodes=1",
                "eval.every_env_steps=0", "eval.video=false", "threads=1", f"run_dir={run}"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["robot"], saved["task"]) == ("franka", "lift")  # eval and deploy read the checkpoint's task
