"""The WidowX 250 S servo chain: which Dynamixel drives which joint, and the position units.

Nine servos on one Protocol 2.0 bus. Waist, shoulder, elbow and their shadows, forearm_roll and
wrist_angle are XM430-W350; wrist_rotate and the gripper are XL430-W250 (the smaller servo for the two
lightest loads). The shadows (IDs 3 and 5) sit mirrored on the same joint as their masters (2 and 4),
so their shafts turn the other way; the Interbotix configuration sets their Drive Mode to reverse and
their Secondary ID to the master's, so they report the master's position and execute its writes.

Positions: 4096 ticks per revolution, 2048 = 0 rad (the Interbotix convention). The gripper servo's
position maps linearly to the distance between the finger pads: GRIPPER_CLOSED_TICKS = 30 mm,
GRIPPER_OPEN_TICKS = 74 mm (a quarter turn of the horn between the two; an emulator choice, the real
linkage is close to but not exactly linear).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from robot_rl.sim.widowx.robot import GRIPPER_MAX_WIDTH, GRIPPER_MIN_WIDTH

TICKS_PER_REV = 4096
CENTER_TICKS = 2048
GRIPPER_CLOSED_TICKS = 1536
GRIPPER_OPEN_TICKS = 2560


@dataclass(frozen=True)
class ServoSpec:
    id: int
    name: str
    joint: str             # an entry of robot.JOINT_NAMES
    model: str             # "XM430-W350" | "XL430-W250"
    shadow_of: int | None = None


WIDOWX_SERVOS = (
    ServoSpec(1, "waist", "waist", "XM430-W350"),
    ServoSpec(2, "shoulder", "shoulder", "XM430-W350"),
    ServoSpec(3, "shoulder_shadow", "shoulder", "XM430-W350", shadow_of=2),
    ServoSpec(4, "elbow", "elbow", "XM430-W350"),
    ServoSpec(5, "elbow_shadow", "elbow", "XM430-W350", shadow_of=4),
    ServoSpec(6, "forearm_roll", "forearm_roll", "XM430-W350"),
    ServoSpec(7, "wrist_angle", "wrist_angle", "XM430-W350"),
    ServoSpec(8, "wrist_rotate", "wrist_rotate", "XL430-W250"),
    ServoSpec(9, "gripper", "gripper", "XL430-W250"),
)


def rad_to_ticks(angle: float) -> int:
    return CENTER_TICKS + round(angle * TICKS_PER_REV / (2 * math.pi))


def ticks_to_rad(ticks: float) -> float:
    return (ticks - CENTER_TICKS) * 2 * math.pi / TICKS_PER_REV


def width_to_ticks(width: float) -> float:
    """Finger pad distance (m) to gripper servo ticks (not rounded, not clipped)."""
    fraction = (width - GRIPPER_MIN_WIDTH) / (GRIPPER_MAX_WIDTH - GRIPPER_MIN_WIDTH)
    return GRIPPER_CLOSED_TICKS + fraction * (GRIPPER_OPEN_TICKS - GRIPPER_CLOSED_TICKS)


def ticks_to_width(ticks: float) -> float:
    fraction = (ticks - GRIPPER_CLOSED_TICKS) / (GRIPPER_OPEN_TICKS - GRIPPER_CLOSED_TICKS)
    return GRIPPER_MIN_WIDTH + fraction * (GRIPPER_MAX_WIDTH - GRIPPER_MIN_WIDTH)
