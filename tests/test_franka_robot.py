"""robot=franka in the robot layer (robot_rl.drivers.robot) without ROS: the same surface on its MuJoCo twin
and through the real franky client against franky-sim (the libfranka protocol on a loopback address)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from robot_rl.drivers.robot import make_robot
from robot_rl.sim.franka import panda
from robot_rl.sim.franka.kinematics import PandaKinematics
from robot_rl.sim.specs import embodiment_spec


def _moves_down(robot, seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Act -z for ``seconds`` at the control rate; the TCP position before and after (state[7:10])."""
    start = robot.observe()["state"][7:10].copy()
    applied = []
    for _ in range(round(seconds * panda.CONTROL_RATE_HZ)):
        applied.append(robot.act(np.array([0, 0, -1.0, 0, 0, 0, 1.0])))
        time.sleep(1.0 / panda.CONTROL_RATE_HZ)
    time.sleep(0.3)
    return start, robot.observe()["state"][7:10], applied


def test_the_twin_robot_observes_the_spec_and_moves_as_the_twin_scales_actions():
    robot = make_robot("franka", "twin", task="lift", cameras=("front",), image_size=(48, 64))
    robot.connect()
    try:
        spec = embodiment_spec("franka", "lift", cameras=("front",), image_size=(48, 64))
        obs = robot.observe()
        assert sorted(obs) == sorted(spec.obs_keys)
        assert obs["state"].shape == (21,) and obs["front"].shape == (48, 64, 3)
        start, end, applied = _moves_down(robot, 0.5)  # the lift scene starts the TCP at z 0.18-0.28
        assert -1.05 < applied[1][2] < -0.8  # POS_STEP per unit, the twin's scale (the velocity bound may trim)
        assert end[2] < start[2] - 0.08
        assert end[2] >= panda.SAFETY_BOX_LOW[2] - 0.01
    finally:
        robot.disconnect()


def test_the_franky_robot_reads_its_state_through_libfranka_and_moves(franky_sim_host):
    robot = make_robot("franka", "franky", port=franky_sim_host)
    robot.connect()
    try:
        state = robot.observe()["state"]
        assert state.shape == (21,)
        pos, _ = PandaKinematics().forward(panda.HOME_QPOS)
        assert state[7:10] == pytest.approx(pos, abs=2e-3)  # the ready pose, from the measured joints
        assert state[14] == pytest.approx(panda.GRIPPER_MAX_WIDTH, abs=2e-3)
        start, end, applied = _moves_down(robot)
        # the ready pose lies inside the safety box: the first command executes as sent (no jump), later ones
        # at most as sent (the filter's velocity bound trims a command that comes early)
        assert applied[0][:6] == pytest.approx([0, 0, -1.0, 0, 0, 0], abs=1e-6)
        assert min(a[2] for a in applied) >= -1.0 - 1e-6 and np.median([a[2] for a in applied]) < -0.8
        assert end[2] < start[2] - 0.2
    finally:
        robot.disconnect()
