"""WidowX 250 S embodiment constants: joints, limits, action scaling, home pose, workspace.

The twin and the ROS 2 driver both read these; nothing here depends on MuJoCo or on an env class.
Limits are the Interbotix wx250s specification (degrees there, radians here).
"""
from __future__ import annotations

import numpy as np

ROBOT_NAME = "widowx"
CONTROL_RATE_HZ = 5.0  # Bridge data collection rate

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
JOINT_NAMES = (*ARM_JOINTS, "gripper")  # the servo order of the real arm
FINGER_JOINTS = ("left_finger", "right_finger")  # slide joints in the model, coupled to one servo

ARM_LIMITS_DEG = np.array([
    [-180.0, 180.0],   # waist
    [-108.0, 114.0],   # shoulder
    [-123.0, 92.0],    # elbow
    [-180.0, 180.0],   # forearm_roll
    [-100.0, 123.0],   # wrist_angle
    [-180.0, 180.0],   # wrist_rotate
])
ARM_LIMITS = np.deg2rad(ARM_LIMITS_DEG)  # (6, 2) radians
ARM_LOWER, ARM_UPPER = ARM_LIMITS[:, 0].copy(), ARM_LIMITS[:, 1].copy()

# Distance between the finger pads, fully closed and fully open; each finger slides half of it.
GRIPPER_MIN_WIDTH = 0.030
GRIPPER_MAX_WIDTH = 0.074
FINGER_LIMITS = (GRIPPER_MIN_WIDTH / 2, GRIPPER_MAX_WIDTH / 2)

# Bridge-style 7-D action: (dx, dy, dz, droll, dpitch, dyaw, gripper), each in [-1, 1].
MAX_DELTA_POS = 0.05    # m per control step at |action| = 1
MAX_DELTA_ROT = 0.25    # rad per control step at |action| = 1
ACTION_DIM = 7

# The end-effector target is clipped to this box (base frame, metres): the twin's safety box.
WORKSPACE_LOW = np.array([0.12, -0.30, 0.02])
WORKSPACE_HIGH = np.array([0.45, 0.30, 0.35])
# The gripper axis may tilt at most this far from pointing straight down (yaw is free).
MAX_TILT = np.deg2rad(60.0)

# Home: gripper pointing straight down, fingers along the base y axis, the "ee" site at
# HOME_EE_POS (0.30, 0, 0.15) in the base frame. HOME_QPOS is the IK solution of that pose.
HOME_QPOS = np.array([0.0, 0.02201, 0.18310, 0.0, 1.36568, 0.0])
HOME_EE_POS = np.array([0.30, 0.0, 0.15])
HOME_EE_QUAT = np.array([np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0])  # (w, x, y, z): x axis turned to -z


def opening_to_width(opening: float | np.ndarray) -> float | np.ndarray:
    """Gripper opening in [0, 1] (1 = fully open, the Bridge convention) to pad distance in metres."""
    return GRIPPER_MIN_WIDTH + np.clip(opening, 0.0, 1.0) * (GRIPPER_MAX_WIDTH - GRIPPER_MIN_WIDTH)


def width_to_opening(width: float | np.ndarray) -> float | np.ndarray:
    """Pad distance in metres to the gripper opening in [0, 1]."""
    return (width - GRIPPER_MIN_WIDTH) / (GRIPPER_MAX_WIDTH - GRIPPER_MIN_WIDTH)


def gripper_action_to_opening(action: float | np.ndarray) -> float | np.ndarray:
    """The action's gripper entry in [-1, 1] to an opening in [0, 1]."""
    return 0.5 * (np.clip(action, -1.0, 1.0) + 1.0)
