"""Every robot's embodiment spec comes from robot_rl.sim.specs without MuJoCo, and the twins build theirs there."""
from __future__ import annotations

import subprocess
import sys

import pytest

from robot_rl.sim.specs import embodiment_spec, task_facts

TWIN_TASKS = [("widowx", "reach"), ("widowx", "pick_place"), ("franka", "lift"), ("franka", "peg_insert"),
              ("rc_car", "goal")]


def test_the_specs_import_without_mujoco_gymnasium_torch_or_ros():
    code = ("import sys; from robot_rl.sim.specs import embodiment_spec; "
            f"[embodiment_spec(r, t, cameras=('front',)) for r, t in {TWIN_TASKS!r}]; "
            "print(sorted(m for m in ('mujoco', 'gymnasium', 'torch', 'rclpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("robot,task", TWIN_TASKS)
def test_the_twin_records_the_spec_of_its_task(robot, task):
    from robot_rl.sim import make_env

    env = make_env(robot, task, cameras=("front",), image_size=(64, 96))
    try:
        assert env.embodiment == embodiment_spec(robot, task, cameras=("front",), image_size=(64, 96))
        assert env.instruction == task_facts(robot, task).instruction
        assert env.max_steps == task_facts(robot, task).max_steps
    finally:
        env.close()


def test_the_hardware_spec_has_no_task_state():
    twin, hardware = embodiment_spec("widowx", "reach"), embodiment_spec("widowx")
    assert "task_state" in twin.state and "task_state" not in hardware.state
    assert hardware.state["state"] == twin.state["state"] and hardware.action == twin.action


@pytest.mark.parametrize("call,message", [
    (lambda: embodiment_spec("ur5"), "robot='ur5' is unknown"),
    (lambda: embodiment_spec("widowx", "lift"), "task='lift' is unknown for robot 'widowx'"),
    (lambda: embodiment_spec("rc_car", cameras=("wrist",)), "has no camera ['wrist']"),
])
def test_unknown_names_are_refused_with_the_known_ones(call, message):
    with pytest.raises(ValueError, match="expected") as err:
        call()
    assert message in str(err.value)
