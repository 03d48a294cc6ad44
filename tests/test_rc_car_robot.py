"""The RC car in the robot layer (robot_rl.drivers.robot, robot_rl.drivers.rc_car.robot) without ROS: on the
MuJoCo twin and through the real VESC driver against the VESC protocol twin; its registry entry."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from robot_rl.drivers.proprio import proprio_builder
from robot_rl.drivers.robot import ActionRefused, make_robot, robot_definition
from robot_rl.sim.rc_car import constants as car
from robot_rl.sim.rc_car.spec import STATE_NAMES
from robot_rl.sim.specs import embodiment_spec
from ros_helpers import wait_for


@pytest.fixture
def twin_car():
    robot = make_robot("rc_car", "twin", seed=1, cameras=("front",), image_size=(48, 64))
    robot.connect()
    yield robot
    robot.disconnect()


def test_the_twin_car_observes_its_spec_and_drives(twin_car):
    spec = embodiment_spec("rc_car", "goal", cameras=("front",), image_size=(48, 64))
    assert twin_car.spec == spec
    obs = twin_car.observe()
    assert sorted(obs) == sorted(spec.obs_keys)
    for key, key_spec in spec.keys().items():
        if key in obs:
            assert obs[key].shape == key_spec.shape and obs[key].dtype == np.dtype(key_spec.dtype), key
    applied = twin_car.act((2.0, 0.1))  # steering beyond full lock: clipped by the safety core
    np.testing.assert_allclose(applied, [1.0, 0.1], atol=1e-6)

    def driving():
        twin_car.act((0.0, 0.1))
        return abs(twin_car.observe()["state"][0] - 0.1 * car.MAX_SPEED) < 0.05

    wait_for(driving, 5.0, "the wheel speed at 0.3 m/s")


def test_the_watchdog_brakes_when_actions_stop_and_refusals_raise(twin_car):
    twin_car.act((0.0, 0.2))
    wait_for(lambda: twin_car.safety.counts["watchdog"] > 0, 5.0, "the watchdog's brake")
    wait_for(lambda: abs(twin_car.observe()["state"][0]) < 0.05, 5.0, "the car braked to a stop")
    with pytest.raises(ActionRefused, match="malformed"):
        twin_car.act(np.zeros(7))
    with pytest.raises(ActionRefused, match="nan_rejected"):
        twin_car.act((np.nan, 0.0))
    twin_car.estop("test")
    with pytest.raises(ActionRefused, match="estop"):
        twin_car.act((0.0, 0.1))


def test_the_car_through_the_vesc_driver_against_the_protocol_twin():
    pytest.importorskip("serial")
    from robot_rl.sim.vesc.process import EmulatedVescProcess

    with EmulatedVescProcess(seed=4) as vesc:
        robot = make_robot("rc_car", "vesc", port=vesc.port)
        robot.connect()
        try:
            obs = robot.observe()
            assert sorted(obs) == ["state"], "hardware has no task_state"
            assert obs["state"].shape == (8,) and obs["state"].dtype == np.float32
            wait_for(lambda: abs(robot.observe()["state"][7] - 9.81) < 0.3, 5.0, "1 g on the IMU once the car settled")

            def driving():
                robot.act((0.0, 0.1))
                return vesc.commands()["target_erpm"] == pytest.approx(0.1 * car.MAX_SPEED * car.SPEED_TO_ERPM_GAIN, abs=1)

            wait_for(driving, 5.0, "the VESC's speed target")
            vesc.unplug()
            wait_for(lambda: robot.safety.fault_message is not None, 1.0, "the lost port as a fault")
            with pytest.raises(ActionRefused, match="unplugged"):
                robot.act((0.0, 0.1))
        finally:
            robot.disconnect()


def test_the_registry_entry_and_the_proprio_from_joint_states():
    definition = robot_definition("rc_car")
    assert definition.backends == ("twin", "vesc") and definition.process == "robot_rl.drivers.rc_car.node"
    with pytest.raises(ValueError, match="backend='dynamixel' is unknown for robot 'rc_car'"):
        make_robot("rc_car", "dynamixel")
    state_of = proprio_builder("rc_car")
    shuffled = list(reversed(STATE_NAMES))
    state = state_of(shuffled, list(range(8))[::-1])
    np.testing.assert_array_equal(state, np.arange(8, dtype=np.float32))
    with pytest.raises(ValueError, match="wheel_speed"):
        state_of(["steering"], [0.0])


def test_the_car_robot_imports_no_ros():
    code = ("import sys; from robot_rl.drivers.robot import make_robot; r = make_robot('rc_car'); "
            "r.connect(); r.act([0, 0.1]); r.disconnect(); print('rclpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_the_car_is_collected_with_its_own_teleop_and_other_devices_are_refused():
    from robot_rl.launch.graphs import Options, build_graph

    options = Options(robot="rc_car", backend="vesc", task="goal", out="store.zarr", teleop="gamepad", cameras=(),
                      rate=20.0)
    processes = {p.name: p for p in build_graph("teleop_collect", options)}
    assert processes["teleop"].module == "robot_rl.drivers.rc_car.teleop"
    assert processes["rc_car"].module == "robot_rl.drivers.rc_car.node" and "/dev/ttyACM0" in processes["rc_car"].args
    keyboard = Options(robot="rc_car", backend="vesc", task="goal", out="store.zarr", teleop="keyboard")
    with pytest.raises(ValueError, match="teleop=keyboard cannot drive robot=rc_car yet: expected one of scripted, gamepad"):
        build_graph("teleop_collect", keyboard)
