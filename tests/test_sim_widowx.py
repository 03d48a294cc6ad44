"""The WidowX 250 S twin: model against the published spec, IK, the Bridge-style action, the gripper,
the workspace box and the pick-and-place success rule, all with real MuJoCo physics.

Generic task promises (spec, determinism, dynamics knobs, experts, cameras) are in test_sim_tasks.py.
"""
from __future__ import annotations

import time

import mujoco
import numpy as np
import pytest

from robot_rl.sim.twin import asset_path
from robot_rl.sim.widowx import (
    ARM_JOINTS,
    HOME_EE_POS,
    HOME_EE_QUAT,
    HOME_QPOS,
    JOINT_NAMES,
    MAX_DELTA_POS,
    MAX_DELTA_ROT,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    DeltaPoseController,
    WidowXKinematics,
    WidowXPickPlace,
    WidowXReach,
)
from robot_rl.sim.widowx.experts import finger_yaw

# DESIGN.md, "Facts about the robots": joint order and limits in degrees.
SPEC_LIMITS_DEG = {
    "waist": (-180, 180), "shoulder": (-108, 114), "elbow": (-123, 92),
    "forearm_roll": (-180, 180), "wrist_angle": (-100, 123), "wrist_rotate": (-180, 180),
}


@pytest.fixture(scope="module")
def kin():
    return WidowXKinematics()


def hold(env, action, steps=1):
    for _ in range(steps):
        obs, *_ = env.step(np.asarray(action, dtype=np.float32))
    return obs


@pytest.mark.parametrize("xml", ["widowx/wx250s.xml", "widowx/scene.xml"])
def test_model_joints_and_limits_are_the_published_ones(xml):
    model = mujoco.MjModel.from_xml_path(asset_path(xml))
    names = [model.joint(i).name for i in range(model.njnt)]
    assert names[:6] == list(SPEC_LIMITS_DEG) == list(ARM_JOINTS)
    assert [model.actuator(i).name for i in range(model.nu)] == list(JOINT_NAMES)
    for name, (low, high) in SPEC_LIMITS_DEG.items():
        np.testing.assert_allclose(model.joint(name).range, np.deg2rad([low, high]), atol=1e-6)
        np.testing.assert_allclose(model.actuator(name).ctrlrange, np.deg2rad([low, high]), atol=1e-6)
    # Each finger slides 15..37 mm from the centre: pads 30..74 mm apart.
    for finger in ("left_finger", "right_finger"):
        np.testing.assert_allclose(model.joint(finger).range, [0.015, 0.037])


def test_published_reach_and_home_pose(kin):
    straight, _ = kin.forward(np.zeros(6))  # arm stretched forward: the ee_gripper frame of the xacro
    np.testing.assert_allclose(straight, [0.458325, 0.0, 0.36065], atol=1e-6)
    pos, quat = kin.forward(HOME_QPOS)
    np.testing.assert_allclose(pos, HOME_EE_POS, atol=1e-4)
    assert abs(abs(quat @ HOME_EE_QUAT) - 1.0) < 1e-6


def test_ik_reaches_random_targets_within_5_mm(kin):
    rng = np.random.default_rng(0)
    low, high = kin.lower, kin.upper
    cases = []
    for _ in range(25):  # anywhere within the limits, from a nearby seed (the driver's warm start)
        q_true = rng.uniform(low, high)
        cases.append((q_true, np.clip(q_true + rng.uniform(-0.3, 0.3, 6), low, high)))
    for _ in range(25):  # around the workspace, from the home pose
        cases.append((np.clip(HOME_QPOS + rng.uniform(-0.6, 0.6, 6), low, high), HOME_QPOS))
    for q_true, seed in cases:
        pos, quat = kin.forward(q_true)
        q, err = kin.solve(pos, quat, seed, max_iters=100)
        assert err <= 0.005, f"IK missed {pos} by {err * 1000:.1f} mm (true joints {q_true})"
        assert kin.last_rot_err <= 0.01
        assert np.all(q >= low) and np.all(q <= high)
        np.testing.assert_allclose(kin.forward(q)[0], pos, atol=0.005)


def test_ik_is_fast_when_warm_started(kin):
    rng = np.random.default_rng(1)
    home_pos, home_quat = kin.forward(HOME_QPOS)
    targets = home_pos + rng.uniform(-MAX_DELTA_POS, MAX_DELTA_POS, (300, 3))
    kin.solve(targets[0], home_quat, HOME_QPOS)  # compile the kernels first
    start = time.perf_counter()
    for target in targets:
        _, err = kin.solve(target, home_quat, HOME_QPOS, max_iters=8)
        assert err < 0.001
    per_solve = (time.perf_counter() - start) / len(targets)
    assert per_solve < 1e-3, f"{per_solve * 1e3:.2f} ms per solve (target 0.3 ms; 1 ms allows a busy machine)"


def test_ik_refuses_bad_input_with_the_fix(kin):
    with pytest.raises(ValueError, match="target_pos"):
        kin.solve([0.3, 0.0])
    with pytest.raises(ValueError, match="target_quat"):
        kin.solve([0.3, 0.0, 0.1], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="q_init"):
        kin.solve([0.3, 0.0, 0.1], None, np.zeros(7))
    with pytest.raises(ValueError, match="workspace box"):
        DeltaPoseController(kin, workspace_low=[0.5, 0, 0], workspace_high=[0.4, 1, 1])


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("scale", [1.0, -0.5])
def test_action_moves_the_gripper_by_the_scaled_amount(axis, scale):
    env = WidowXReach()
    env.reset(seed=2)
    hold(env, [0, 0, 0, 0, 0, 0, 1.0], 2)  # let the servos settle into their gravity sag
    before = env.ee_pos
    action = np.zeros(7)
    action[axis], action[6] = scale, 1.0
    hold(env, action, 2)
    moved = env.ee_pos - before
    expected = np.zeros(3)
    expected[axis] = 2 * scale * MAX_DELTA_POS
    # Sag grows as the arm reaches out (about 1 cm at 0.4 m), as on the real arm: 1 cm of slack.
    np.testing.assert_allclose(moved, expected, atol=0.01)


def test_rotation_action_turns_the_gripper_about_the_base_axes():
    env = WidowXReach()
    env.reset(seed=2)
    hold(env, [0, 0, 0, 0, 0, 0, 1.0], 2)
    yaw_before, approach_before = finger_yaw(env.ee_rot), env.ee_rot[:, 0]
    hold(env, [0, 0, 0, 0, 0, 1.0, 1.0], 2)
    assert abs(finger_yaw(env.ee_rot) - yaw_before - 2 * MAX_DELTA_ROT) < 0.03
    assert abs(env.ee_rot[2, 0] - approach_before[2]) < 0.01  # a turn about the vertical keeps the tilt


def test_workspace_box_clips_the_commanded_pose():
    env = WidowXReach()
    env.reset(seed=0)
    hold(env, [1, 1, 1, 0, 0, 0, 1], 15)
    np.testing.assert_allclose(env.controller.target_pos, WORKSPACE_HIGH)
    assert np.all(env.ee_pos <= WORKSPACE_HIGH + 0.01)
    hold(env, [-1, -1, -1, 0, 0, 0, 1], 20)
    np.testing.assert_allclose(env.controller.target_pos, WORKSPACE_LOW)
    assert np.all(env.ee_pos >= WORKSPACE_LOW - 0.01)  # the pads stop at the table, not through it


def test_tilt_is_clipped_so_the_gripper_keeps_facing_the_table():
    env = WidowXReach()
    env.reset(seed=0)
    hold(env, [0, 0, 0, 0, 1, 0, 1], 10)
    approach = env.controller.target_rot[:, 0]
    assert np.degrees(np.arccos(-approach[2])) == pytest.approx(60.0, abs=0.01)


def test_gripper_opening_spans_30_to_74_mm():
    env = WidowXReach()
    env.reset(seed=0)
    closed = hold(env, [0, 0, 0, 0, 0, 0, -1], 2)
    assert env.gripper_width == pytest.approx(0.030, abs=0.0015)
    assert closed["state"][6] == pytest.approx(0.0, abs=0.04)
    opened = hold(env, [0, 0, 0, 0, 0, 0, 1], 2)
    assert env.gripper_width == pytest.approx(0.074, abs=0.0015)
    assert opened["state"][6] == pytest.approx(1.0, abs=0.04)
    hold(env, [0, 0, 0, 0, 0, 0, 0], 2)
    assert env.gripper_width == pytest.approx(0.052, abs=0.0015)


def test_state_layout_matches_its_description():
    env = WidowXPickPlace()
    obs, _ = env.reset(seed=5)
    obs = hold(env, [0.3, -0.2, 0.1, 0, 0, 0.2, 1], 1)
    state = obs["state"]
    np.testing.assert_allclose(state[:6], env.arm_qpos, atol=1e-6)
    np.testing.assert_allclose(state[7:10], env.ee_pos, atol=1e-6)
    quat = state[10:14]
    assert quat[0] >= 0 and np.linalg.norm(quat) == pytest.approx(1.0, abs=1e-5)
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, quat.astype(float))
    np.testing.assert_allclose(rot.reshape(3, 3), env.ee_rot, atol=1e-5)
    np.testing.assert_allclose(obs["task_state"][:3], env.cube_pos, atol=1e-6)
    np.testing.assert_allclose(obs["task_state"][7:10], env.bowl_pos, atol=1e-6)


def test_pick_place_resets_are_randomized_and_apart():
    env = WidowXPickPlace()
    cubes = []
    for seed in range(20):
        env.reset(seed=seed)
        assert np.linalg.norm(env.cube_pos[:2] - env.bowl_pos[:2]) >= 0.14
        cubes.append(env.cube_pos)
    assert np.ptp(np.array(cubes)[:, :2], axis=0).min() > 0.1


def place_cube(env, xyz):
    qadr = env.model.joint("cube").qposadr[0]
    env.data.qpos[qadr:qadr + 7] = [*xyz, 1, 0, 0, 0]
    env.data.qvel[env.model.joint("cube").dofadr[0]:][:6] = 0
    mujoco.mj_forward(env.model, env.data)


def test_cube_in_bowl_counts_only_once_released_and_resting():
    env = WidowXPickPlace(reward_type="sparse")
    env.reset(seed=1)
    bowl = env.bowl_pos
    place_cube(env, [bowl[0] + 0.02, bowl[1], 0.03])
    _, reward, terminated, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32))
    assert info["success"] and reward == 1.0 and terminated and not info["failure"]

    env.reset(seed=1)
    place_cube(env, [bowl[0] + 0.12, bowl[1] + 0.12, 0.02])  # beside the bowl
    _, reward, _, _, info = env.step(np.zeros(7, np.float32))
    assert not info["success"] and reward == 0.0


def test_cube_off_the_table_ends_the_episode_as_a_failure():
    env = WidowXPickPlace()
    env.reset(seed=0)
    place_cube(env, [0.25, 0.7, 0.02])
    _, _, terminated, truncated, info = env.step(np.zeros(7, np.float32))
    assert terminated and info["failure"] and not truncated


def test_dense_pick_place_reward_climbs_through_its_stages():
    from robot_rl.sim.widowx import WidowXPickPlaceExpert

    env = WidowXPickPlace()
    env.reset(seed=4)
    expert = WidowXPickPlaceExpert(env)
    expert.reset()
    rewards = []
    for _ in range(env.max_steps):
        _, reward, _, _, info = env.step(expert())
        rewards.append(reward)
        if info["success"]:
            break
    assert info["success"] and rewards[-1] == 1.0
    assert all(0.0 <= r <= 1.0 for r in rewards)
    assert max(rewards[:-1]) >= 0.4  # it was carried above the bowl's rim on the way
    assert rewards[0] < 0.2
