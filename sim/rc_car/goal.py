"""RCCarGoal: drive the car to a goal point in the arena without touching a wall or an obstacle.

One goal per episode. The start pose (x, y, yaw, initial steering) and the goal are drawn at each reset:
the car's centre at least 0.6 m and its body box 0.3 m from walls and obstacles (room to manoeuvre),
the goal at least 0.5 m from them and 1.5-5 m from the start.
Success: the car's centre within ``GOAL_RADIUS`` = 0.3 m of the goal; the episode then ends (unless
``terminate_on_success=False``, when success means "within the radius now"). Failure: the body box
touches a wall or an obstacle, which ends the episode. 200 steps at 20 Hz (10 s).

Action (2,) in [-1, 1]: steering * 0.38 rad is the servo's target (bicycle-model angle, + = left; the
wheels follow Ackermann geometry); throttle * 3 m/s is a target speed for the VESC in speed (ERPM)
mode, negative for reverse. ``action_to_vesc`` gives the hardware commands.

state (8,), what the VESC and the IMU report, in the car's frame (x forward, y left, z up):
[0] wheel speed (m/s; on the car ERPM / 4614), [1] steering angle (rad, the mean of the front wheels;
on the car the last servo command mapped back), [2:5] IMU gyro (rad/s), [5:8] IMU accelerometer (m/s^2,
specific force: +9.81 on z at rest).
task_state (5,): [0:3] car pose x, y (m), yaw (rad) in the arena frame, [3:5] goal x, y (m).

Dense reward per step: (previous distance - distance to goal) / (MAX_SPEED * dt), i.e. 1.0 for a step at
top speed straight at the goal; plus 1.0 on reaching the goal; minus 10 on the colliding step.
Sparse reward: 1.0 within the goal radius, else 0.0.
"""
from __future__ import annotations

from typing import ClassVar

import mujoco
import numpy as np

from robot_rl.sim.rc_car.arena import Arena
from robot_rl.sim.rc_car.constants import (
    ACTION_DIM,
    CONTROL_RATE_HZ,
    MAX_SPEED,
    ROBOT_NAME,
    STEER_LIMIT,
    TRACK,
    WHEEL_RADIUS,
    WHEELBASE,
)
from robot_rl.sim.rc_car.spec import CAMERAS
from robot_rl.sim.rotations import yaw_quat
from robot_rl.sim.twin import Evaluation, TwinEnv

GOAL_RADIUS = 0.3          # m
CLEARANCE = 0.5            # m, least distance of the goal from walls and obstacles
START_CLEARANCE = 0.6      # m, least distance of the car's centre at the start: room to manoeuvre
START_BODY_CLEARANCE = 0.3  # m, least distance of the car's body box at the start
GOAL_DISTANCE = (1.5, 5.0)  # m, straight-line start-to-goal range
INITIAL_STEER = 0.1        # rad, the servo rests anywhere within this at the start
COLLISION_PENALTY = 10.0
GOAL_REWARD = 1.0


class RCCarGoal(TwinEnv):
    scene = "rc_car/arena.xml"
    robot = ROBOT_NAME
    control_rate_hz = CONTROL_RATE_HZ
    action_dim = ACTION_DIM
    task = "goal"
    camera_names: ClassVar[tuple[str, ...]] = CAMERAS

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        m = self.model
        self.arena = Arena.from_model(m)
        self._body_geom = m.geom("car_body").id
        self._goal_mocap = m.body("goal").mocapid[0]
        self._chassis = m.body("chassis").id
        self._free_qpos = m.jnt_qposadr[m.joint("car").id]
        self._free_dof = m.jnt_dofadr[m.joint("car").id]
        self._steer_qpos = [m.jnt_qposadr[m.joint(n).id] for n in ("steer_left", "steer_right")]
        self._rear_dofs = [m.jnt_dofadr[m.joint(n).id] for n in ("wheel_rear_left", "wheel_rear_right")]
        self._steer_tendon = m.tendon("steering").id
        self._steer_act, self._drive_act = m.actuator("steering").id, m.actuator("drive").id
        self._ackermann = m.eq_data[m.equality(0).id, :5].copy()
        self._gyro = _sensor_slice(m, "imu_gyro")
        self._accel = _sensor_slice(m, "imu_accel")
        self.goal = np.zeros(2)
        self._last_distance = 0.0

    # --- hooks ---------------------------------------------------------------------------------
    def _reset_task(self, rng: np.random.Generator) -> None:
        while True:
            start, yaw = self.arena.sample_free(rng, START_CLEARANCE)[0], rng.uniform(-np.pi, np.pi)
            if self.arena.body_clearance((*start, yaw)) >= START_BODY_CLEARANCE:
                break
        while True:
            goal = self.arena.sample_free(rng, CLEARANCE)[0]
            if GOAL_DISTANCE[0] <= np.linalg.norm(goal - start) <= GOAL_DISTANCE[1]:
                break
        q = self.data.qpos
        q[self._free_qpos:self._free_qpos + 3] = [*start, WHEEL_RADIUS]
        q[self._free_qpos + 3:self._free_qpos + 7] = yaw_quat(yaw)
        steer = rng.uniform(-INITIAL_STEER, INITIAL_STEER)
        left = self._left_wheel_angle(steer)
        q[self._steer_qpos[0]] = left
        q[self._steer_qpos[1]] = np.polynomial.polynomial.polyval(left, self._ackermann)
        self.data.ctrl[self._steer_act] = steer
        self.data.act[self.model.actuator_actadr[self._steer_act]] = steer
        self.data.mocap_pos[self._goal_mocap, :2] = goal
        self.goal = goal
        self._last_distance = float(np.linalg.norm(goal - start))

    def _apply_action(self, action: np.ndarray) -> None:
        self.data.ctrl[self._steer_act] = action[0] * STEER_LIMIT
        self.data.ctrl[self._drive_act] = action[1] * MAX_SPEED / WHEEL_RADIUS

    def _proprio(self) -> np.ndarray:
        d = self.data
        left, right = self._rear_dofs
        wheel_speed = 0.5 * (d.qvel[left] + d.qvel[right]) * WHEEL_RADIUS
        return np.concatenate([[wheel_speed, d.ten_length[self._steer_tendon]],
                               d.sensordata[self._gyro], d.sensordata[self._accel]])

    def _task_state(self) -> np.ndarray:
        return np.concatenate([self.pose(), self.goal])

    def _evaluate(self, sparse: bool) -> Evaluation:
        distance = float(np.linalg.norm(self.pose()[:2] - self.goal))
        success = distance <= GOAL_RADIUS
        failure = self.collided()
        if sparse:
            reward = float(success)
        else:
            progress = (self._last_distance - distance) / (MAX_SPEED / self.control_rate_hz)
            reward = progress + GOAL_REWARD * success - COLLISION_PENALTY * failure
        self._last_distance = distance
        return Evaluation(reward=float(reward), success=success, failure=failure)

    # --- the car -------------------------------------------------------------------------------
    def drive(self, speed: float, steering: float) -> None:
        """Set the actuators as the VESC would: rear-wheel target speed (m/s) and steering angle (rad, clipped to
        the servo's range). For drivers stepping the physics themselves (robot_rl.sim.vesc, the twin backend)."""
        self.data.ctrl[self._drive_act] = speed / WHEEL_RADIUS
        self.data.ctrl[self._steer_act] = float(np.clip(steering, -STEER_LIMIT, STEER_LIMIT))

    @property
    def steering_target(self) -> float:
        """The steering actuator's target angle (rad)."""
        return float(self.data.ctrl[self._steer_act])

    def proprio(self) -> np.ndarray:
        """The ``state`` observation now, without sensor noise."""
        return self._proprio()

    def chassis_quat(self) -> np.ndarray:
        """The chassis orientation (w, x, y, z), what the IMU's attitude estimate reports."""
        return self.data.xquat[self._chassis].copy()

    def drive_torque(self) -> float:
        """The drive's torque at the rear axle (N m)."""
        return float(self.data.actuator_force[self._drive_act])

    def place(self, x: float, y: float, yaw: float) -> None:
        """The chassis centre at (x, y) heading ``yaw``, at rest, wheels straight (then mj_forward)."""
        q, data = self._free_qpos, self.data
        data.qpos[q:q + 3] = [x, y, WHEEL_RADIUS]
        data.qpos[q + 3:q + 7] = yaw_quat(yaw)
        data.qvel[:] = 0.0
        data.act[:] = 0.0
        data.ctrl[:] = 0.0
        for index in self._steer_qpos:
            data.qpos[index] = 0.0
        mujoco.mj_forward(self.model, data)

    def pose(self) -> np.ndarray:
        """(x, y, yaw) of the chassis centre, midway between the axles."""
        w, x, y, z = self.data.xquat[self._chassis]
        yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        return np.array([*self.data.xpos[self._chassis, :2], yaw])

    def speed(self) -> float:
        """Forward speed of the chassis (m/s), from the free joint's world-frame velocity."""
        yaw = self.pose()[2]
        vx, vy = self.data.qvel[self._free_dof:self._free_dof + 2]
        return float(vx * np.cos(yaw) + vy * np.sin(yaw))

    def collided(self) -> bool:
        """True when the body box is in contact with a wall or an obstacle."""
        ncon = self.data.ncon
        return bool(ncon) and bool(np.any(self.data.contact.geom[:ncon] == self._body_geom))

    def _left_wheel_angle(self, steer: float) -> float:
        """The left wheel's Ackermann angle for a bicycle-model steering angle."""
        if abs(steer) < 1e-9:
            return 0.0
        radius = WHEELBASE / np.tan(steer)
        return float(np.arctan(WHEELBASE / (radius - TRACK / 2)))


def _sensor_slice(model: mujoco.MjModel, name: str) -> slice:
    sensor = model.sensor(name)
    return slice(int(sensor.adr[0]), int(sensor.adr[0] + sensor.dim[0]))
