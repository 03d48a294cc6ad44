"""The Franka twin: published kinematics and limits, the impedance controller inside MuJoCo, the
safety box. Generic task promises (spec, determinism, knobs, experts) are in test_sim_tasks.py."""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from robot_rl.sim import franka
from robot_rl.sim.franka import FrankaLift, FrankaLiftExpert, FrankaPegInsert, FrankaPegInsertExpert
from robot_rl.sim.franka.kinematics import IKError, solve_ik
from robot_rl.sim.rotations import quat_exp, quat_mul, world_rotvec
from robot_rl.sim.twin import asset_path

# Franka's published limits, written out again so a typo in the package cannot hide.
PUBLISHED_LIMITS = [(-2.8973, 2.8973), (-1.7628, 1.7628), (-2.8973, 2.8973), (-3.0718, -0.0698),
                    (-2.8973, 2.8973), (-0.0175, 3.7525), (-2.8973, 2.8973)]
PUBLISHED_TORQUES = [87, 87, 87, 87, 12, 12, 12]
# Franka's modified-DH table (Craig): a, d, alpha per joint, then the flange.
DH = [(0, 0.333, 0), (0, 0, -np.pi / 2), (0, 0.316, np.pi / 2), (0.0825, 0, np.pi / 2),
      (-0.0825, 0.384, -np.pi / 2), (0, 0, np.pi / 2), (0.088, 0, np.pi / 2)]


def dh_tcp(q: np.ndarray) -> np.ndarray:
    """TCP pose (4x4) from the published DH table, flange d = 0.107, hand -45 deg and 0.1034 m."""
    def rot_x(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])

    def rot_z(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])

    def trans(x, z):
        t = np.eye(4)
        t[0, 3], t[2, 3] = x, z
        return t

    pose = np.eye(4)
    for (a, d, alpha), theta in zip(DH, q):
        pose = pose @ rot_x(alpha) @ trans(a, 0) @ rot_z(theta) @ trans(0, d)
    return pose @ trans(0, 0.107) @ rot_z(-np.pi / 4) @ trans(0, 0.1034)


@pytest.fixture(scope="module")
def lift():
    env = FrankaLift()
    yield env
    env.close()


def test_joint_limits_and_torque_limits_are_the_published_ones(lift):
    model = lift.model
    for name, (low, high), torque in zip(franka.JOINT_NAMES, PUBLISHED_LIMITS, PUBLISHED_TORQUES):
        joint = model.joint(name)
        np.testing.assert_allclose(joint.range, [low, high], atol=1e-9, err_msg=name)
        np.testing.assert_allclose(model.jnt_actfrcrange[joint.id], [-torque, torque], err_msg=name)
    np.testing.assert_allclose(franka.JOINT_LIMITS_LOW, [lo for lo, _ in PUBLISHED_LIMITS])
    np.testing.assert_allclose(franka.JOINT_LIMITS_HIGH, [hi for _, hi in PUBLISHED_LIMITS])
    for name in franka.FINGER_JOINT_NAMES:
        np.testing.assert_allclose(model.joint(name).range, [0.0, 0.04])


def test_forward_kinematics_match_the_published_dh_parameters(lift):
    model, data = lift.model, mujoco.MjData(lift.model)
    rng = np.random.default_rng(0)
    for q in [franka.HOME_QPOS, *rng.uniform(franka.JOINT_LIMITS_LOW, franka.JOINT_LIMITS_HIGH, (5, 7))]:
        data.qpos[:7] = q
        mujoco.mj_kinematics(model, data)
        expected = dh_tcp(q)
        np.testing.assert_allclose(data.site("tcp").xpos, expected[:3, 3], atol=1e-9)
        np.testing.assert_allclose(data.site("tcp").xmat.reshape(3, 3), expected[:3, :3], atol=1e-9)
    data.qpos[:7] = franka.HOME_QPOS
    mujoco.mj_kinematics(model, data)
    # Franka's "ready" pose
    np.testing.assert_allclose(data.site("tcp").xpos, [0.3069, 0.0, 0.4869], atol=2e-4)


def test_the_ready_pose_lies_inside_the_safety_box_so_a_first_command_from_home_is_not_clipped():
    from robot_rl.sim.franka.targets import step_target

    home = dh_tcp(franka.HOME_QPOS)[:3, 3]
    margins = np.concatenate([home - franka.SAFETY_BOX_LOW, franka.SAFETY_BOX_HIGH - home])
    assert np.all(margins > franka.POS_STEP), f"home {home} is within one step of a box face: margins {margins}"
    for axis in range(3):
        for sign in (-1.0, 1.0):
            action = np.zeros(7)
            action[axis] = sign
            pos, _ = step_target(home, franka.NOMINAL_QUAT, action)
            expected = home.copy()
            expected[axis] += sign * franka.POS_STEP
            np.testing.assert_allclose(pos, expected, atol=1e-12)


def test_models_compile_and_physics_runs_at_500_hz_under_10_hz_control():
    # 1 kHz physics could not reach the speed target with the arm's contacts; 500 Hz is the lower end
    # of the 500-1000 Hz range a Franka torque loop may be twinned at.
    robot = mujoco.MjModel.from_xml_path(asset_path("franka/panda.xml"))
    assert robot.nu == 7 and robot.opt.timestep == 0.002
    for env in (FrankaLift(), FrankaPegInsert()):
        assert env.model.opt.timestep == 0.002
        assert env.n_substeps == 50 and env.control_rate_hz == 10.0


def test_refsite_lengths_are_the_tcp_pose_error_in_the_target_frame(lift):
    """The assumption the controller rests on, checked on MuJoCo 3.3.7: with refsite, a translational
    actuator's length is the TCP offset from the target in the target frame, and a rotational one's the
    rotation vector of the TCP relative to the target, also in the target frame."""
    model, data = lift.model, lift.data
    lift.reset(seed=0)
    tcp_pos, tcp_quat = lift.tcp_pos, lift.tcp_quat
    turn = np.array([0.05, -0.03, 0.08])                      # rad, in the target's own frame
    target_quat = quat_mul(tcp_quat, quat_exp(-turn))         # so the TCP = target * exp(turn)
    target_pos = tcp_pos - np.array([0.01, -0.02, 0.03])
    lift.set_target(target_pos, target_quat)
    mujoco.mj_forward(model, data)
    lengths = data.actuator_length[:6]
    target_mat = np.zeros(9)
    mujoco.mju_quat2Mat(target_mat, lift.target_quat)
    np.testing.assert_allclose(lengths[:3], target_mat.reshape(3, 3).T @ (tcp_pos - target_pos), atol=1e-9)
    np.testing.assert_allclose(lengths[3:], turn, atol=1e-9)
    # and the force pulls back toward the target: F = -K * length at rest
    forces = data.actuator_force[:6]
    assert np.all(forces[:3] * lengths[:3] < 0) and np.all(forces[3:] * lengths[3:] < 0)


def test_controller_settles_on_a_step_within_half_a_second(lift):
    model, data = lift.model, lift.data
    lift.reset(seed=0)
    goal_pos = lift.tcp_pos + [0.05, -0.03, 0.04]
    goal_quat = quat_mul(quat_exp(np.array([0.1, -0.1, 0.15])), lift.tcp_quat)
    lift.set_target(goal_pos, goal_quat)
    torques = []
    for _ in range(round(0.5 / model.opt.timestep)):
        mujoco.mj_step(model, data)
        torques.append(data.qfrc_actuator[:7].copy())
    mujoco.mj_kinematics(model, data)
    assert np.linalg.norm(lift.tcp_pos - goal_pos) < 0.004
    assert np.degrees(np.linalg.norm(world_rotvec(goal_quat, lift.tcp_quat))) < 1.0
    torques = np.abs(np.array(torques))
    assert torques.max() > 1.0, "the actuators produced no joint torque"
    assert np.all(torques <= franka.TORQUE_LIMITS + 1e-9)


def test_joint_torques_stay_within_franka_limits_under_a_huge_error(lift):
    model, data = lift.model, lift.data
    lift.reset(seed=1)
    data.mocap_pos[model.body("target").mocapid[0]] += [0.4, -0.5, -0.3]  # bypassing the safety box
    peak = np.zeros(7)
    for _ in range(200):
        mujoco.mj_step(model, data)
        peak = np.maximum(peak, np.abs(data.qfrc_actuator[:7]))
    assert np.all(peak <= franka.TORQUE_LIMITS + 1e-9)
    assert np.any(np.isclose(peak, franka.TORQUE_LIMITS)), "no joint reached its torque limit"


def test_the_safety_box_clips_targets_and_keeps_the_tcp_inside(lift):
    lift.reset(seed=2)
    for action in ([1, 1, 1, 0, 0, 0, 0], [-1, -1, -1, 0, 0, 0, 0]):
        for _ in range(30):
            lift.step(np.array(action, np.float32))
            assert np.all(lift.target_pos >= franka.SAFETY_BOX_LOW - 1e-12)
            assert np.all(lift.target_pos <= franka.SAFETY_BOX_HIGH + 1e-12)
        corner = franka.SAFETY_BOX_HIGH if action[0] > 0 else franka.SAFETY_BOX_LOW
        np.testing.assert_allclose(lift.target_pos, corner)
        tcp = lift.tcp_pos
        inside = np.all(tcp >= franka.SAFETY_BOX_LOW - 0.01) and np.all(tcp <= franka.SAFETY_BOX_HIGH + 0.01)
        assert inside, f"the TCP left the safety box: {tcp}"


def test_orientation_limits_clip_the_commanded_rotation(lift):
    lift.reset(seed=3)
    for _ in range(30):
        lift.step(np.array([0, 0, 0, 1, -1, 1, 0], np.float32))
    tilt = np.zeros(3)
    mujoco.mju_subQuat(tilt, lift.target_quat, franka.NOMINAL_QUAT)
    np.testing.assert_allclose(np.abs(tilt), franka.ORIENTATION_LIMITS, atol=1e-9)


def test_state_layout_and_gripper_command(lift):
    obs, _ = lift.reset(seed=4)
    state = obs["state"]
    np.testing.assert_allclose(state[:7], lift.data.qpos[:7], atol=1e-6)
    np.testing.assert_allclose(state[7:10], lift.tcp_pos, atol=1e-6)
    assert abs(np.linalg.norm(state[10:14]) - 1) < 1e-5 and state[10:14] @ franka.NOMINAL_QUAT > 0
    assert state[14] == pytest.approx(franka.GRIPPER_MAX_WIDTH, abs=1e-3)
    for _ in range(10):
        obs, *_ = lift.step(np.array([0, 0, 0, 0, 0, 0, -1], np.float32))
    assert obs["state"][14] < 0.002, "the gripper did not close"
    for _ in range(10):
        obs, *_ = lift.step(np.array([0, 0, 0, 0, 0, 0, 1], np.float32))
    assert obs["state"][14] > 0.078, "the gripper did not open"


def test_peg_starts_grasped_and_the_gripper_action_cannot_drop_it():
    env = FrankaPegInsert()
    env.reset(seed=0)
    held = env.tip_pos - env.tcp_pos
    assert np.linalg.norm(held) == pytest.approx(0.082, abs=0.003)
    for _ in range(10):
        _, _, terminated, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1], np.float32))
        assert not terminated
    np.testing.assert_allclose(env.tip_pos - env.tcp_pos, held, atol=0.002)
    assert env.gripper_width == pytest.approx(0.024, abs=0.002)


def test_ik_reaches_poses_and_refuses_bad_input(lift):
    data = mujoco.MjData(lift.model)
    quat = quat_mul(quat_exp(np.array([0.0, 0.0, 0.4])), franka.NOMINAL_QUAT)
    q = solve_ik(lift.model, data, [0.5, 0.1, 0.2], quat)
    assert np.all(q >= franka.JOINT_LIMITS_LOW) and np.all(q <= franka.JOINT_LIMITS_HIGH)
    mujoco.mj_kinematics(lift.model, data)
    np.testing.assert_allclose(data.site("tcp").xpos, [0.5, 0.1, 0.2], atol=1e-4)
    with pytest.raises(ValueError, match="expected pos"):
        solve_ik(lift.model, data, [0.5, 0.1], quat)
    with pytest.raises(IKError, match="safety box"):
        solve_ik(lift.model, data, [1.5, 0.0, 0.2], quat)


def test_experts_refuse_the_wrong_task(lift):
    with pytest.raises(ValueError, match="FrankaPegInsert"):
        FrankaPegInsertExpert(lift)
    FrankaLiftExpert(lift)
