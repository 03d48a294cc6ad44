"""The robot layer (robot_rl.drivers.robot) without ROS: connect / observe / act / disconnect on the WidowX
twin and through the real dynamixel-sdk against the Dynamixel protocol twin; the registry the graphs use."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from robot_rl.drivers.robot import ActionRefused, make_robot, robot_definition
from robot_rl.sim.specs import embodiment_spec


@pytest.fixture
def twin_robot():
    robot = make_robot("widowx", "twin", task="reach", cameras=("front",), image_size=(48, 64))
    robot.connect()
    yield robot
    robot.disconnect()


def test_the_twin_robot_observes_its_spec_and_reports_the_action_it_executed(twin_robot):
    spec = embodiment_spec("widowx", "reach", cameras=("front",), image_size=(48, 64))
    assert twin_robot.spec == spec
    obs = twin_robot.observe()
    assert sorted(obs) == sorted(spec.obs_keys)
    for key, key_spec in spec.keys().items():
        if key in obs:
            assert obs[key].shape == key_spec.shape and obs[key].dtype == np.dtype(key_spec.dtype), key
    start = obs["state"][7:10].copy()
    up = np.array([0, 0, 0.5, 0, 0, 0, 1.0])
    applied = twin_robot.act(up)
    assert applied.shape == (7,) and applied[2] == pytest.approx(0.5, abs=0.05)
    deadline = time.monotonic() + 5
    while twin_robot.observe()["state"][9] < start[2] + 0.01 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert twin_robot.observe()["state"][9] > start[2] + 0.01, "the gripper did not rise"


def test_an_estop_holds_and_refused_actions_raise(twin_robot):
    twin_robot.estop("test")
    held = twin_robot.act(np.array([1.0, 0, 0, 0, 0, 0, 1.0]))
    assert np.all(held[:6] == 0), "under an e-stop the executed action is a hold"
    with pytest.raises(ActionRefused, match="nan_rejected"):
        twin_robot.act(np.full(7, np.nan))
    with pytest.raises(ActionRefused, match="malformed"):
        twin_robot.act(np.zeros(3))


def test_the_bus_thread_holds_the_arm_when_actions_stop(twin_robot):
    twin_robot.act(np.array([0.5, 0, 0, 0, 0, 0, 1.0]))
    deadline = time.monotonic() + 5
    while twin_robot.arbiter.safety.report()["watchdog_hold"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert twin_robot.arbiter.safety.report()["watchdog_hold"] > 0, "the watchdog never held"


def test_the_robot_layer_imports_no_ros():
    code = ("import sys; from robot_rl.drivers.robot import make_robot; r = make_robot('widowx', task='reach'); "
            "r.connect(); r.act([0, 0, 0, 0, 0, 0, 1]); r.disconnect(); print('rclpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_the_hardware_robot_through_dynamixel_sdk_against_the_protocol_twin():
    pytest.importorskip("dynamixel_sdk")
    from robot_rl.sim.dynamixel.process import EmulatedWidowXProcess

    arm = EmulatedWidowXProcess().start()
    robot = make_robot("widowx", "dynamixel", port=arm.port)
    try:
        robot.connect()
        obs = robot.observe()
        assert sorted(obs) == ["state"], "hardware has no task_state"
        assert obs["state"].shape == (14,) and obs["state"].dtype == np.float32
        applied = robot.act(np.array([0, 0, 0.4, 0, 0, 0, 1.0]))
        assert applied[2] == pytest.approx(0.4, abs=0.05)
    finally:
        robot.disconnect()
        arm.stop()


@pytest.mark.parametrize("call,message", [
    (lambda: robot_definition("ur5"), "robot='ur5' has no driver: expected one of widowx"),
    (lambda: make_robot("widowx", "franky"), "backend='franky' is unknown for robot 'widowx': expected one of twin, dynamixel"),
])
def test_unknown_robots_and_backends_name_the_choices(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
