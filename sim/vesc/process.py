"""The emulated VESC in a process of its own (robot_rl.sim.device_process), as the real one answers from its
own microcontroller.

    with EmulatedVescProcess(seed=0) as vesc:
        serial.Serial(vesc.port, 115200)   # the pty, behind a symlink in a temporary folder
        vesc.set_fault(5)                  # faults and peeks: the same calls as on EmulatedVesc

Keywords (``seed``, ``baudrate``, ``timeout_s``) go to EmulatedVesc.
"""

from __future__ import annotations

import numpy as np

from robot_rl.sim.device_process import DeviceProcess


class EmulatedVescProcess(DeviceProcess):
    DEVICE = "robot_rl.sim.vesc.car:EmulatedVesc"
    PORT_NAME = "ttyVESC"
    LABEL = "the emulated VESC"
    CALLS = ("unplug", "replug", "set_fault", "clear_fault", "set_battery", "set_temperatures", "corrupt_replies",
             "corrupt_commands", "stats", "commands", "ground_truth", "wheel_speed", "steering", "rpm_log", "place")

    def unplug(self) -> float:
        return self.call("unplug")

    def replug(self) -> None:
        self.call("replug")

    def set_fault(self, code: int) -> None:
        self.call("set_fault", code)

    def clear_fault(self) -> None:
        self.call("clear_fault")

    def set_battery(self, volts: float) -> None:
        self.call("set_battery", volts)

    def set_temperatures(self, fet: float, motor: float) -> None:
        self.call("set_temperatures", fet, motor)

    def corrupt_replies(self, count: int) -> None:
        self.call("corrupt_replies", count)

    def corrupt_commands(self, count: int) -> None:
        self.call("corrupt_commands", count)

    def stats(self) -> dict:
        return self.call("stats")

    def commands(self) -> dict:
        return self.call("commands")

    def rpm_log(self) -> list[tuple[float, float]]:
        return self.call("rpm_log")

    def place(self, x: float, y: float, yaw: float) -> None:
        self.call("place", x, y, yaw)

    def ground_truth(self) -> np.ndarray:
        return self.call("ground_truth")

    def wheel_speed(self) -> float:
        return self.call("wheel_speed")

    def steering(self) -> float:
        return self.call("steering")
