"""The Franka backend that is its MuJoCo twin (robot_rl.sim.franka), in-process (robot_rl.drivers.twin_backend).

The twin's arm is driven by its Cartesian impedance controller (the mocap ``target``), so a joint target
reaches it as the TCP pose of those joints (the Panda's forward kinematics): the same pose the driver's IK
solved for, inside the safety box. The gripper target is one finger's slide (m), the twin's gripper
actuator takes the width.
"""
from __future__ import annotations

import time

import numpy as np

from robot_rl.drivers.backend import JointReading
from robot_rl.drivers.franka.franky_backend import JOINT_NAMES
from robot_rl.drivers.twin_backend import TwinBackend
from robot_rl.sim.franka import panda
from robot_rl.sim.franka.kinematics import PandaKinematics


class FrankaTwinBackend(TwinBackend):
    joint_names = JOINT_NAMES
    robot = "franka"

    def __init__(self, task: str = "lift", seed: int = 0, real_time: bool = True,
                 image_size: tuple[int, int] = (128, 128), dynamics: str | dict | None = None,
                 control_period: float = 0.1):
        super().__init__(task, seed, real_time, image_size, dynamics, control_period)
        model = self.env.model
        self.twin = self.env.unwrapped
        self._qpos = np.array([model.joint(n).qposadr[0] for n in (*panda.JOINT_NAMES, panda.FINGER_JOINT_NAMES[0])])
        self._qvel = np.array([model.joint(n).dofadr[0] for n in (*panda.JOINT_NAMES, panda.FINGER_JOINT_NAMES[0])])
        self._gripper = model.actuator("gripper").id
        self.kinematics = PandaKinematics()

    def _reading(self) -> JointReading:
        d = self.env.data
        effort = np.append(d.qfrc_actuator[self._qvel[:7]], d.actuator_force[self._gripper])
        return JointReading(d.qpos[self._qpos].copy(), d.qvel[self._qvel].copy(), effort, time.monotonic())

    def _command(self, targets: np.ndarray) -> None:
        self.twin.set_target(*self.kinematics.forward(targets[:7]))
        self.env.data.ctrl[self._gripper] = 2.0 * float(targets[7])

    def _hold_here(self) -> None:
        self.twin.set_target(self.twin.tcp_pos, self.twin.tcp_quat)
        self.env.data.ctrl[self._gripper] = self.twin.gripper_width
