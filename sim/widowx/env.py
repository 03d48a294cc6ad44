"""What every WidowX 250 S task shares: the scene, the Bridge-style action, proprioception, placement.

The 7-D action in [-1, 1] moves a commanded end-effector pose (see control.py); IK turns it into
set-points for the position servos, which MuJoCo then tracks for one 0.2 s control period.
"""
from __future__ import annotations

from typing import ClassVar

import mujoco
import numpy as np

from robot_rl.sim.rotations import yaw_quat
from robot_rl.sim.twin import TwinEnv
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.control import DeltaPoseController
from robot_rl.sim.widowx.kinematics import WidowXKinematics
from robot_rl.sim.widowx.spec import CAMERAS, STATE_DIM

CUBE_HALF = 0.02            # the cube is 4 cm on a side
BOWL_INNER_RADIUS = 0.075   # inner face of the bowl wall
BOWL_FLOOR = 0.006          # top of the bowl's base above the table
TABLE_HALF = (0.45, 0.55)
TABLE_CENTER = (0.25, 0.0)
# Where objects are placed: in front of the robot, within easy reach with the gripper down.
OBJECT_LOW, OBJECT_HIGH = np.array([0.20, -0.20]), np.array([0.38, 0.20])
MIN_CUBE_BOWL_DISTANCE = 0.14  # bowl radius + cube half-diagonal + 3 cm


class WidowXEnv(TwinEnv):
    scene = "widowx/scene.xml"
    robot = wx.ROBOT_NAME
    control_rate_hz = wx.CONTROL_RATE_HZ
    action_dim = wx.ACTION_DIM
    camera_names = CAMERAS
    init_joint_noise: ClassVar[float] = 0.05  # rad, uniform per arm joint around the home pose

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        model = self.model
        self._arm_qpos = np.array([model.joint(n).qposadr[0] for n in wx.ARM_JOINTS])
        self._finger_qpos = np.array([model.joint(n).qposadr[0] for n in wx.FINGER_JOINTS])
        self._arm_ctrl = np.array([model.actuator(n).id for n in wx.ARM_JOINTS])
        self._gripper_ctrl = model.actuator("gripper").id
        self._ee = model.site("ee").id
        self._cube = model.body("cube").id
        self._cube_qpos = model.joint("cube").qposadr[0]
        self._cube_qvel = model.joint("cube").dofadr[0]
        self._bowl = model.body("bowl").mocapid[0]
        self._target = model.body("target").mocapid[0]
        # Half a millimetre is plenty against the servos' few millimetres of gravity sag, and saves iterations.
        self.controller = DeltaPoseController(WidowXKinematics(pos_tol=5e-4, rot_tol=5e-3))
        self._state = np.zeros(STATE_DIM)

    # --- measured quantities -------------------------------------------------------------------
    @property
    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._ee].copy()

    @property
    def ee_rot(self) -> np.ndarray:
        return self.data.site_xmat[self._ee].reshape(3, 3).copy()

    @property
    def gripper_width(self) -> float:
        """Distance between the finger pads (m)."""
        left, right = self._finger_qpos
        return float(self.data.qpos[left] + self.data.qpos[right])

    @property
    def arm_qpos(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    @property
    def cube_pos(self) -> np.ndarray:
        return self.data.xpos[self._cube].copy()

    @property
    def cube_quat(self) -> np.ndarray:
        return self.data.xquat[self._cube].copy()

    @property
    def bowl_pos(self) -> np.ndarray:
        return self.data.mocap_pos[self._bowl].copy()

    # --- hooks ---------------------------------------------------------------------------------
    def _apply_action(self, action: np.ndarray) -> None:
        q, finger = self.controller.step(action)
        self.data.ctrl[self._arm_ctrl] = q
        self.data.ctrl[self._gripper_ctrl] = finger

    def _proprio(self) -> np.ndarray:
        data, state = self.data, self._state
        state[:6] = data.qpos[self._arm_qpos]
        state[6] = wx.width_to_opening(data.qpos[self._finger_qpos].sum())
        state[7:10] = data.site_xpos[self._ee]
        quat = state[10:14]
        mujoco.mju_mat2Quat(quat, data.site_xmat[self._ee])
        if quat[0] < 0:
            quat *= -1
        return state.copy()

    # --- reset helpers -------------------------------------------------------------------------
    def _reset_arm(self, rng: np.random.Generator) -> None:
        """Home pose plus uniform joint noise, gripper open; the commanded pose starts there."""
        noise = rng.uniform(-self.init_joint_noise, self.init_joint_noise, len(wx.ARM_JOINTS))
        q = np.clip(wx.HOME_QPOS + noise, wx.ARM_LOWER, wx.ARM_UPPER)
        finger = wx.FINGER_LIMITS[1]
        self.data.qpos[self._arm_qpos] = q
        self.data.qpos[self._finger_qpos] = finger
        self.data.ctrl[self._arm_ctrl] = q
        self.data.ctrl[self._gripper_ctrl] = finger
        self.controller.reset(q, opening=1.0)

    def _place_objects(self, rng: np.random.Generator) -> None:
        """Cube (random yaw) and bowl at random, non-overlapping spots on the table."""
        bowl = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
        while True:
            cube = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
            if np.linalg.norm(cube - bowl) >= MIN_CUBE_BOWL_DISTANCE:
                break
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)  # the cube's symmetry makes other yaws the same
        self.data.qpos[self._cube_qpos:self._cube_qpos + 7] = [cube[0], cube[1], CUBE_HALF, *yaw_quat(yaw)]
        self.data.mocap_pos[self._bowl] = [bowl[0], bowl[1], 0.0]

    def _cube_off_table(self) -> bool:
        x, y, z = self.data.xpos[self._cube].tolist()
        return abs(x - TABLE_CENTER[0]) > TABLE_HALF[0] or abs(y - TABLE_CENTER[1]) > TABLE_HALF[1] or z < -0.05
