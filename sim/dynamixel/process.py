"""The emulated WidowX chain in a process of its own (robot_rl.sim.device_process), as a real servo chain
answers from outside the driver.

    with EmulatedWidowXProcess() as arm:
        port = PortHandler(arm.port)   # the pty, behind a symlink in a temporary folder
        arm.silence(5)                 # faults and register peeks: the same calls as on EmulatedWidowX

In the driver's process the emulator's bus and physics threads would share the GIL with the driver, whose
SDK busy-polls the port, so under load a sync read's answers would arrive in switch-interval (5 ms) steps
and miss dynamixel-sdk's ~36 ms timeout.
"""

from __future__ import annotations

import numpy as np

from robot_rl.sim.device_process import DeviceProcess


class EmulatedWidowXProcess(DeviceProcess):
    DEVICE = "robot_rl.sim.dynamixel.widowx_chain:EmulatedWidowX"
    PORT_NAME = "ttyDXL"
    LABEL = "the emulated WidowX"
    CALLS = ("silence", "unsilence", "set_overload", "unplug", "replug", "register", "set_register",
             "torque_enabled", "joint_positions", "device")

    def silence(self, servo_id: int) -> None:
        self.call("silence", servo_id)

    def unsilence(self, servo_id: int) -> None:
        self.call("unsilence", servo_id)

    def set_overload(self, servo_id: int) -> None:
        self.call("set_overload", servo_id)

    def unplug(self) -> float:
        return self.call("unplug")

    def replug(self) -> None:
        self.call("replug")

    def register(self, servo_id: int, name: str) -> int:
        return self.call("register", servo_id, name)

    def set_register(self, servo_id: int, name: str, value: int) -> None:
        self.call("set_register", servo_id, name, value)

    def torque_enabled(self, servo_id: int) -> bool:
        return self.call("torque_enabled", servo_id)

    def joint_positions(self) -> np.ndarray:
        return self.call("joint_positions")

    def device(self) -> str:
        return self.call("device")
