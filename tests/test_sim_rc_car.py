"""The RC car twin: its model (geometry, steering, drive, tyres, IMU), the arena task and the planner.

Real MuJoCo physics throughout. Driving tests that need open floor make the walls and obstacles
non-colliding first, so the car's behaviour, not the arena layout, is what they measure.
"""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from robot_rl.sim.rc_car import (
    MAX_SPEED,
    SERVO_MIN,
    SPEED_TO_ERPM_GAIN,
    STEER_LIMIT,
    STEERING_TO_SERVO_OFFSET,
    TRACK,
    WHEEL_RADIUS,
    WHEELBASE,
    RCCarGoal,
    RCCarGoalExpert,
    action_to_vesc,
    erpm_to_speed,
)
from robot_rl.sim.rc_car.arena import OBSTACLE_BIT
from robot_rl.sim.rc_car.goal import GOAL_DISTANCE, START_BODY_CLEARANCE
from robot_rl.sim.rc_car.grid import ClearanceGrid
from robot_rl.sim.rc_car.planner import SearchSettings, body_gap, plan_path


def place(env: RCCarGoal, x: float, y: float, yaw: float) -> None:
    """Put the car at rest at (x, y) facing yaw, wheels straight."""
    pose = [x, y, WHEEL_RADIUS, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    env.data.qpos[env._free_qpos:env._free_qpos + 7] = pose
    env.data.qpos[env._steer_qpos] = 0.0
    env.data.act[:] = 0.0
    env.data.qvel[:] = 0.0
    mujoco.mj_forward(env.model, env.data)


def open_floor() -> RCCarGoal:
    env = RCCarGoal()
    env.reset(seed=0)
    env.model.geom_conaffinity[env.model.geom_conaffinity & OBSTACLE_BIT > 0] = 0
    place(env, 0.0, 0.0, 0.0)
    return env


def body_velocity(env: RCCarGoal) -> tuple[float, float]:
    """Forward and leftward speed of the chassis in its own frame (m/s)."""
    yaw = env.pose()[2]
    vx, vy = env.data.qvel[env._free_dof:env._free_dof + 2]
    return vx * np.cos(yaw) + vy * np.sin(yaw), -vx * np.sin(yaw) + vy * np.cos(yaw)


def test_model_has_the_f1tenth_geometry():
    env = RCCarGoal()
    m = env.model
    front, rear = m.body("knuckle_left").pos, m.body("wheel_rear_left").pos
    assert front[0] - rear[0] == pytest.approx(WHEELBASE) == pytest.approx(0.33, abs=0.02)
    assert m.body("knuckle_left").pos[1] - m.body("knuckle_right").pos[1] == pytest.approx(TRACK)
    assert m.geom_size[m.body("wheel_rear_left").geomadr[0], 0] == pytest.approx(WHEEL_RADIUS)
    assert 3.5 <= m.body_subtreemass[m.body("chassis").id] <= 4.0
    steering = m.actuator("steering")
    np.testing.assert_allclose(steering.ctrlrange, [-STEER_LIMIT, STEER_LIMIT])
    assert STEER_LIMIT == pytest.approx(0.38)
    assert m.actuator("drive").ctrlrange[1] * WHEEL_RADIUS == pytest.approx(MAX_SPEED)  # full throttle
    assert m.cam("front").fovy[0] == pytest.approx(45.0)
    env.close()


def test_steering_holds_its_limit_with_ackermann_geometry():
    env = open_floor()
    for _ in range(10):
        env.step(np.array([1.0, 0.0]))
    left, right = env.data.qpos[env._steer_qpos]
    assert env._proprio()[1] == pytest.approx(STEER_LIMIT, abs=0.02)  # the mean of the wheels
    assert left > right > 0  # the inner (left) wheel turns more
    # Ackermann: both wheel axes meet on the rear axle line, cot(outer) - cot(inner) = track / wheelbase.
    assert 1 / np.tan(right) - 1 / np.tan(left) == pytest.approx(TRACK / WHEELBASE, rel=0.05)


def test_full_throttle_drives_forward_and_accelerates():
    env = open_floor()
    speeds, start = [], env.pose()[:2]
    for _ in range(30):
        obs, *_ = env.step(np.array([0.0, 1.0]))
        speeds.append(body_velocity(env)[0])
    assert speeds[2] < speeds[6] < speeds[12]
    assert 2.0 < speeds[-1] <= MAX_SPEED + 0.1  # top speed: a few m/s
    assert env.pose()[0] - start[0] > 2.0 and abs(env.pose()[1] - start[1]) < 0.05
    assert obs["state"][0] == pytest.approx(speeds[-1], abs=0.1)  # wheel speed ~ ground speed, no spin


def test_full_steer_at_low_speed_turns_on_the_bicycle_radius():
    env = open_floor()
    rear_axle = []
    for step in range(80):
        env.step(np.array([1.0, 0.5 / MAX_SPEED]))
        if step >= 20:
            x, y, yaw = env.pose()
            rear_axle.append([x - 0.5 * WHEELBASE * np.cos(yaw), y - 0.5 * WHEELBASE * np.sin(yaw)])
    points = np.array(rear_axle)
    # Least-squares circle through the rear axle's track.
    a = np.column_stack([2 * points, np.ones(len(points))])
    cx, cy, c = np.linalg.lstsq(a, (points ** 2).sum(1), rcond=None)[0]
    radius = np.sqrt(c + cx ** 2 + cy ** 2)
    assert radius == pytest.approx(WHEELBASE / np.tan(STEER_LIMIT), rel=0.15)


def test_hard_turn_at_speed_skids():
    env = open_floor()
    for _ in range(20):
        env.step(np.array([0.0, 1.0]))
    slips, yaw_ratio = [], []
    for _ in range(8):
        env.step(np.array([1.0, 1.0]))
        forward, lateral = body_velocity(env)
        no_slip_yaw_rate = forward * np.tan(env._proprio()[1]) / WHEELBASE
        slips.append(abs(lateral))
        yaw_ratio.append(env.data.qvel[env._free_dof + 5] / no_slip_yaw_rate)
    assert max(slips) > 0.2, f"no lateral slip: {np.round(slips, 3)}"
    assert min(yaw_ratio) < 0.8, f"yaw rate kept up with the no-slip value: {np.round(yaw_ratio, 2)}"


def test_driving_into_a_wall_terminates_with_failure():
    env = RCCarGoal()
    env.reset(seed=0)
    place(env, 2.2, 0.0, 0.0)  # 0.55 m from the east wall's face, facing it
    for _ in range(30):
        _, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0]))
        if terminated:
            break
    assert terminated and info["failure"] and not truncated and not info["success"]
    assert reward < -5  # the collision penalty
    env.close()


def test_imu_reads_gravity_at_rest():
    env = RCCarGoal()
    obs, _ = env.reset(seed=2)
    for name in ("imu_accel", "imu_gyro"):
        assert env.model.sensor(name).dim[0] == 3
    for _ in range(5):
        obs, *_ = env.step(np.array([0.0, 0.0]))
    np.testing.assert_allclose(obs["state"][5:8], [0.0, 0.0, 9.81], atol=0.1)
    np.testing.assert_allclose(obs["state"][2:5], 0.0, atol=0.02)
    assert obs["state"][0] == pytest.approx(0.0, abs=0.01)
    env.close()


def test_resets_draw_clear_starts_and_reachable_goals():
    env = RCCarGoal()
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        x, y, yaw, gx, gy = obs["task_state"]
        np.testing.assert_allclose([x, y, yaw], env.pose(), atol=1e-5)
        assert env.arena.body_clearance((x, y, yaw)) >= START_BODY_CLEARANCE
        assert env.arena.clearance(np.array([gx, gy])) >= 0.5
        assert GOAL_DISTANCE[0] <= np.hypot(gx - x, gy - y) <= GOAL_DISTANCE[1]
        np.testing.assert_allclose(env.data.mocap_pos[0, :2], [gx, gy])  # the goal marker
    env.close()


def test_dense_reward_is_progress_and_sparse_is_success():
    env = RCCarGoal()
    env.reset(seed=0)
    place(env, -2.0, 2.4, 0.0)
    env.goal = np.array([0.0, 2.4])  # straight ahead, 2 m
    env._last_distance = 2.0
    rewards = [env.step(np.array([0.0, 1.0]))[1] for _ in range(10)]
    assert all(r >= 0 for r in rewards) and max(rewards) > 0.5  # 1.0 = a full-speed step toward the goal
    while not env.step(np.array([0.0, 0.5]))[4]["success"]:
        pass
    assert env._evaluate(sparse=True).reward == 1.0
    env.close()


def test_planner_backs_out_of_a_wall_and_keeps_clear():
    env = RCCarGoal()
    env.reset(seed=0)
    place(env, 2.4, 2.4, np.pi / 4)  # nose into the north-east corner
    grid, settings = ClearanceGrid(env.arena), SearchSettings()
    goal = np.array([-2.0, 0.5])
    segments = plan_path(grid, settings.cost_to_go(grid, goal), env.pose(), goal, settings)
    assert segments is not None and segments[0].direction < 0  # backs up first
    for segment in segments:
        assert segment.gaps.min() >= settings.start_margin
        poses = np.column_stack([segment.points, segment.headings])
        np.testing.assert_allclose(body_gap(grid, poses), segment.gaps)
    end = segments[-1].points[-1] + 0.5 * WHEELBASE * np.array([np.cos(segments[-1].headings[-1]),
                                                              np.sin(segments[-1].headings[-1])])
    assert np.linalg.norm(end - goal) <= settings.goal_tolerance + 1e-9
    env.close()


def test_expert_reaches_the_goal_from_a_corner():
    env = RCCarGoal()
    env.reset(seed=0)
    place(env, 2.4, 2.4, np.pi / 4)
    env.goal, env._last_distance = np.array([-2.0, 0.5]), 4.8
    expert = RCCarGoalExpert(env, noise=0.05, seed=0)
    for _ in range(env.max_steps):
        _, _, terminated, _, info = env.step(expert())
        assert not info["failure"]
        if terminated:
            break
    assert info["success"]
    env.close()


def test_vesc_commands_follow_the_design_gains():
    erpm, servo = action_to_vesc([0.0, 1.0])
    assert erpm == pytest.approx(SPEED_TO_ERPM_GAIN * MAX_SPEED)
    assert servo == pytest.approx(STEERING_TO_SERVO_OFFSET)
    assert erpm_to_speed(erpm) == pytest.approx(MAX_SPEED)
    assert action_to_vesc([1.0, -0.5]) == (pytest.approx(-SPEED_TO_ERPM_GAIN * MAX_SPEED / 2), SERVO_MIN)
    with pytest.raises(ValueError, match="steering, throttle"):
        action_to_vesc([0.0, np.nan])
    with pytest.raises(ValueError, match="steering, throttle"):
        action_to_vesc([0.0, 1.0, 2.0])


def test_expert_refuses_another_env():
    class NotACar:
        unwrapped = object()
    with pytest.raises(ValueError, match="RCCarGoal"):
        RCCarGoalExpert(NotACar())
