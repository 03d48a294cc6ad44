"""The WidowX backend that is its MuJoCo twin, in-process (robot_rl.drivers.twin_backend): position
actuators on the 6 arm joints and the gripper take the joint targets as they are."""
from __future__ import annotations

import time

import numpy as np

from robot_rl.drivers.backend import JointReading
from robot_rl.drivers.twin_backend import TwinBackend
from robot_rl.sim.widowx import robot as wx


class WidowXTwinBackend(TwinBackend):
    joint_names = wx.JOINT_NAMES
    robot = "widowx"

    def __init__(self, task: str = "pick_place", seed: int = 0, real_time: bool = True,
                 image_size: tuple[int, int] = (128, 128), dynamics: str | dict | None = None,
                 control_period: float = 0.2):
        super().__init__(task, seed, real_time, image_size, dynamics, control_period)
        model = self.env.model
        joints = (*wx.ARM_JOINTS, "left_finger")
        self._qpos = np.array([model.joint(n).qposadr[0] for n in joints])
        self._qvel = np.array([model.joint(n).dofadr[0] for n in joints])
        self._ctrl = np.array([model.actuator(n).id for n in (*wx.ARM_JOINTS, "gripper")])

    def _reading(self) -> JointReading:
        d = self.env.data
        return JointReading(d.qpos[self._qpos].copy(), d.qvel[self._qvel].copy(),
                            d.actuator_force[self._ctrl].copy(), time.monotonic())

    def _command(self, targets: np.ndarray) -> None:
        self.env.data.ctrl[self._ctrl] = targets

    def _hold_here(self) -> None:
        self.env.data.ctrl[self._ctrl] = self.env.data.qpos[self._qpos]
