"""The Franka Panda twin: a Cartesian impedance controller inside MuJoCo, the Lift and PegInsert tasks,
their scripted experts, and the robot's constants for the driver.

    from robot_rl.sim.franka import FrankaLift, FrankaLiftExpert
    env = FrankaLift(cameras=("front", "wrist"))
"""
from robot_rl.sim.franka.panda import (
    CONTROL_RATE_HZ,
    FINGER_JOINT_NAMES,
    GRIPPER_MAX_WIDTH,
    HOME_QPOS,
    JOINT_LIMITS_HIGH,
    JOINT_LIMITS_LOW,
    JOINT_NAMES,
    NOMINAL_QUAT,
    ORIENTATION_LIMITS,
    POS_STEP,
    ROT_STEP,
    ROTATIONAL_DAMPING,
    ROTATIONAL_STIFFNESS,
    SAFETY_BOX_HIGH,
    SAFETY_BOX_LOW,
    TCP_OFFSET,
    TORQUE_LIMITS,
    TRANSLATIONAL_DAMPING,
    TRANSLATIONAL_STIFFNESS,
)
from robot_rl.sim.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "FrankaLiftExpert": "robot_rl.sim.franka.experts",
    "FrankaPegInsertExpert": "robot_rl.sim.franka.experts",
    "IKError": "robot_rl.sim.franka.kinematics",
    "solve_ik": "robot_rl.sim.franka.kinematics",
    "FrankaLift": "robot_rl.sim.franka.lift",
    "FrankaPegInsert": "robot_rl.sim.franka.peg_insert",
    "FrankaTwin": "robot_rl.sim.franka.twin",
    "clip_target": "robot_rl.sim.franka.targets",
    "step_target": "robot_rl.sim.franka.targets",
})
__all__ = [
    "CONTROL_RATE_HZ", "FINGER_JOINT_NAMES", "GRIPPER_MAX_WIDTH", "HOME_QPOS", "JOINT_LIMITS_HIGH",
    "JOINT_LIMITS_LOW", "JOINT_NAMES", "NOMINAL_QUAT", "ORIENTATION_LIMITS", "POS_STEP", "ROT_STEP",
    "ROTATIONAL_DAMPING", "ROTATIONAL_STIFFNESS", "SAFETY_BOX_HIGH", "SAFETY_BOX_LOW", "TCP_OFFSET",
    "TORQUE_LIMITS", "TRANSLATIONAL_DAMPING", "TRANSLATIONAL_STIFFNESS",
    "FrankaLift", "FrankaLiftExpert", "FrankaPegInsert", "FrankaPegInsertExpert", "FrankaTwin", "IKError",
    "clip_target", "solve_ik", "step_target",
]
