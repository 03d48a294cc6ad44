"""The Franka twin: a 7-D delta-pose + gripper action at 10 Hz into a Cartesian impedance controller.

The controller is MuJoCo itself: six actuators on the TCP site with the mocap ``target`` as their
refsite produce F = -K e - D v (e: TCP pose relative to the target, in the target frame), and MuJoCo
applies tau = J(q)^T F in every physics step, with gravity compensated through the same actuators.
Python only moves the target once per control step, so no Python runs between physics steps.

Action (normalized [-1, 1]):
  0-2  target translation, POS_STEP metres per step at 1 (base frame)
  3-5  target rotation vector, ROT_STEP radians per step at 1 (base frame, applied on the left)
  6    gripper width: -1 closed, +1 open (0.08 m), linear in between
The new target is the last target plus the delta, clipped to the safety box and orientation limits.
"""
from __future__ import annotations

from typing import ClassVar

import mujoco
import numpy as np

from robot_rl.sim.franka import panda
from robot_rl.sim.franka.kinematics import solve_ik
from robot_rl.sim.franka.spec import ACTION_DIM, CAMERAS, STATE_DIM
from robot_rl.sim.franka.targets import clip_target, gripper_width, step_target
from robot_rl.sim.rotations import quat_exp, quat_mul, yaw_quat
from robot_rl.sim.twin import TwinEnv


class FrankaTwin(TwinEnv):
    robot: ClassVar[str] = "franka"
    control_rate_hz: ClassVar[float] = panda.CONTROL_RATE_HZ
    action_dim: ClassVar[int] = ACTION_DIM
    camera_names: ClassVar[tuple[str, ...]] = CAMERAS
    # where a reset puts the TCP: uniform box (base frame) and yaw about the vertical
    start_low: ClassVar[np.ndarray] = np.array([0.40, -0.12, 0.18])
    start_high: ClassVar[np.ndarray] = np.array([0.55, 0.12, 0.28])
    start_yaw: ClassVar[float] = 0.3
    safety_low: ClassVar[np.ndarray] = panda.SAFETY_BOX_LOW
    safety_high: ClassVar[np.ndarray] = panda.SAFETY_BOX_HIGH

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        model = self.model
        if abs(model.opt.timestep * self.n_substeps * self.control_rate_hz - 1.0) > 1e-9:
            raise ValueError(f"{self.scene}: timestep {model.opt.timestep} does not divide the control "
                             f"period 1/{self.control_rate_hz} s: pick a timestep that does")
        if [model.joint(n).qposadr[0] for n in panda.JOINT_NAMES] != list(range(7)):
            raise ValueError(f"{self.scene}: the Panda's arm joints must come first in the model (qpos 0-6)")
        self._left, self._right = (model.joint(n).qposadr[0] for n in panda.FINGER_JOINT_NAMES)
        self._tcp = model.site("tcp").id
        target = model.body("target").mocapid[0]
        self._mocap_pos, self._mocap_quat = self.data.mocap_pos[target], self.data.mocap_quat[target]  # views
        self._gripper = model.actuator("gripper").id
        fingers = (model.body("left_finger").id, model.body("right_finger").id)
        self._pads = frozenset(g for g in range(model.ngeom)
                               if model.geom_bodyid[g] in fingers and model.geom_conaffinity[g])
        self._tcp_vel = np.zeros(6)
        self._tcp_quat = np.zeros(4)
        self.target_pos = np.zeros(3)
        self.target_quat = panda.NOMINAL_QUAT.copy()

    # --- hooks ---------------------------------------------------------------------------------
    def _place_arm(self, rng: np.random.Generator, tilt: float = 0.0) -> None:
        """Put the arm at a random TCP pose pointing down (tilted by up to ``tilt`` rad), target on it."""
        pos = rng.uniform(self.start_low, self.start_high)
        quat = quat_mul(yaw_quat(rng.uniform(-self.start_yaw, self.start_yaw)), panda.NOMINAL_QUAT)
        if tilt:
            quat = quat_mul(quat_exp(np.append(rng.uniform(-tilt, tilt, 2), 0.0)), quat)
        self.data.qpos[:7] = solve_ik(self.model, self.data, pos, quat)
        self.set_target(pos, quat)

    def set_target(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """Command the impedance controller (clipped to the safety box and orientation limits)."""
        self.target_pos, self.target_quat = clip_target(np.asarray(pos, float), np.asarray(quat, float),
                                                        self.safety_low, self.safety_high)
        self._mocap_pos[:] = self.target_pos
        self._mocap_quat[:] = self.target_quat

    def _apply_action(self, action: np.ndarray) -> None:
        self.set_target(*step_target(self.target_pos, self.target_quat, action, self.safety_low, self.safety_high))
        self._command_gripper(float(action[6]))

    def _command_gripper(self, command: float) -> None:
        self.data.ctrl[self._gripper] = gripper_width(command)

    def _simulate(self) -> None:
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        # mj_step leaves poses and velocities of the state before its last integration: refresh them
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_comVel(self.model, self.data)

    def _proprio(self) -> np.ndarray:
        state = np.empty(STATE_DIM)
        state[:7] = self.data.qpos[:7]
        state[7:10] = self.data.site_xpos[self._tcp]
        quat = self.tcp_quat
        state[10:14] = quat if quat @ panda.NOMINAL_QUAT >= 0 else -quat  # q and -q: keep it continuous
        state[14] = self.data.qpos[self._left] + self.data.qpos[self._right]
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_SITE, self._tcp, self._tcp_vel, 0)
        state[15:18] = self._tcp_vel[3:]
        state[18:21] = self._tcp_vel[:3]
        return state

    # --- helpers for tasks and experts -----------------------------------------------------------
    @property
    def tcp_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._tcp].copy()

    @property
    def tcp_quat(self) -> np.ndarray:
        mujoco.mju_mat2Quat(self._tcp_quat, self.data.site_xmat[self._tcp])
        return self._tcp_quat.copy()

    @property
    def gripper_width(self) -> float:
        return float(self.data.qpos[self._left] + self.data.qpos[self._right])

    def _set_fingers(self, width: float) -> None:
        self.data.qpos[self._left] = self.data.qpos[self._right] = 0.5 * width

    def _pads_hold(self, geom: int) -> bool:
        """Both finger pads touch ``geom`` (contacts of the last physics step)."""
        pairs = self.data.contact.geom
        partners = pairs[:, ::-1][pairs == geom]
        return self._pads.issubset(partners.tolist())
