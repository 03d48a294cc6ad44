"""The WidowX 250 S twin: its MJCF model, kinematics, Bridge-style control, tasks and experts.

    from robot_rl.sim.widowx import WidowXPickPlace, WidowXPickPlaceExpert, WidowXKinematics
"""
from robot_rl.sim.lazy import lazy_exports
from robot_rl.sim.widowx.robot import (
    ACTION_DIM,
    ARM_JOINTS,
    ARM_LIMITS,
    ARM_LIMITS_DEG,
    ARM_LOWER,
    ARM_UPPER,
    CONTROL_RATE_HZ,
    FINGER_JOINTS,
    FINGER_LIMITS,
    GRIPPER_MAX_WIDTH,
    GRIPPER_MIN_WIDTH,
    HOME_EE_POS,
    HOME_EE_QUAT,
    HOME_QPOS,
    JOINT_NAMES,
    MAX_DELTA_POS,
    MAX_DELTA_ROT,
    MAX_TILT,
    ROBOT_NAME,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    gripper_action_to_opening,
    opening_to_width,
    width_to_opening,
)

__getattr__ = lazy_exports(__name__, {
    "DeltaPoseController": "robot_rl.sim.widowx.control",
    "WidowXEnv": "robot_rl.sim.widowx.env",
    "WidowXPickPlaceExpert": "robot_rl.sim.widowx.experts",
    "WidowXReachExpert": "robot_rl.sim.widowx.experts",
    "WidowXKinematics": "robot_rl.sim.widowx.kinematics",
    "WidowXPickPlace": "robot_rl.sim.widowx.pick_place",
    "WidowXReach": "robot_rl.sim.widowx.reach",
})
__all__ = [
    "ACTION_DIM", "ARM_JOINTS", "ARM_LIMITS", "ARM_LIMITS_DEG", "ARM_LOWER", "ARM_UPPER", "CONTROL_RATE_HZ",
    "FINGER_JOINTS", "FINGER_LIMITS", "GRIPPER_MAX_WIDTH", "GRIPPER_MIN_WIDTH", "HOME_EE_POS", "HOME_EE_QUAT",
    "HOME_QPOS", "JOINT_NAMES", "MAX_DELTA_POS", "MAX_DELTA_ROT", "MAX_TILT", "ROBOT_NAME", "WORKSPACE_HIGH",
    "WORKSPACE_LOW", "DeltaPoseController", "WidowXEnv", "WidowXKinematics", "WidowXPickPlace",
    "WidowXPickPlaceExpert", "WidowXReach", "WidowXReachExpert", "gripper_action_to_opening",
    "opening_to_width", "width_to_opening",
]
