"""The 1/10-scale RC car (F1TENTH-style) twin: its MJCF model, arena task, scripted expert and car constants.

    from robot_rl.sim.rc_car import RCCarGoal, RCCarGoalExpert, WHEELBASE, STEER_LIMIT, action_to_vesc
"""
from robot_rl.sim.lazy import lazy_exports
from robot_rl.sim.rc_car.constants import (
    ACTION_DIM,
    CONTROL_RATE_HZ,
    MAX_SPEED,
    ROBOT_NAME,
    SERVO_MAX,
    SERVO_MIN,
    SPEED_TO_ERPM_GAIN,
    SPEED_TO_ERPM_OFFSET,
    STEER_LIMIT,
    STEERING_TO_SERVO_GAIN,
    STEERING_TO_SERVO_OFFSET,
    TRACK,
    WHEEL_RADIUS,
    WHEELBASE,
    action_to_vesc,
    erpm_to_speed,
)

__getattr__ = lazy_exports(__name__, {
    "RCCarGoalExpert": "robot_rl.sim.rc_car.expert",
    "RCCarGoal": "robot_rl.sim.rc_car.goal",
})
__all__ = [
    "ACTION_DIM", "CONTROL_RATE_HZ", "MAX_SPEED", "ROBOT_NAME", "SERVO_MAX", "SERVO_MIN",
    "SPEED_TO_ERPM_GAIN", "SPEED_TO_ERPM_OFFSET", "STEERING_TO_SERVO_GAIN", "STEERING_TO_SERVO_OFFSET",
    "STEER_LIMIT", "TRACK", "WHEELBASE", "WHEEL_RADIUS", "RCCarGoal", "RCCarGoalExpert", "action_to_vesc",
    "erpm_to_speed",
]
