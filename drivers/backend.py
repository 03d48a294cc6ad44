"""What a driver node needs from a robot: read joints, write joint targets, torque, faults.

Joint vectors follow the robot's ``joint_names``; positions in radians, except a parallel gripper,
which is one finger's slide in metres (the twin's joint, and what the safety filter limits).
Backends raise :class:`BackendFault` when the hardware stops answering or reports an error; the node
then holds, reports the fault and waits for ``clear_fault()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class BackendFault(RuntimeError):
    """The bus or a servo failed: unplugged port, a servo that stopped answering, a hardware error."""


@dataclass(frozen=True)
class JointReading:
    position: np.ndarray  # rad (gripper: m)
    velocity: np.ndarray  # rad/s (gripper: m/s)
    effort: np.ndarray    # N m (gripper: N); the servos' current scaled by their torque constant
    stamp: float          # time.monotonic() when the reading was taken


class Backend(Protocol):
    joint_names: tuple[str, ...]

    def connect(self) -> None:
        """Open the bus, identify the hardware, configure it; torque stays off."""

    def read(self) -> JointReading: ...

    def write(self, targets: np.ndarray) -> None:
        """Joint position targets, already through the safety filter."""

    def set_torque(self, enabled: bool) -> None: ...

    def clear_fault(self) -> None:
        """Recover from a fault (reboot servos that report a hardware error); torque stays off."""

    def close(self) -> None: ...
