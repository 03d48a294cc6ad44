"""Franka Emika Panda constants shared by the twin and the real-robot driver.

Frame: the robot base, which is also the twin's world frame (the base sits on the table top, z = 0).
The TCP is the centre of the finger pads, 0.1034 m from the flange along the hand's z axis; at the
nominal orientation the hand points straight down (TCP quaternion (0, 1, 0, 0)).
"""
from __future__ import annotations

import numpy as np

JOINT_NAMES = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "joint7")
FINGER_JOINT_NAMES = ("finger_left", "finger_right")

# Franka's published joint position limits (rad) and joint torque limits (N m).
JOINT_LIMITS_LOW = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
JOINT_LIMITS_HIGH = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
TORQUE_LIMITS = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])

# Franka's "ready" pose; TCP at (0.3069, 0, 0.4869) pointing down.
HOME_QPOS = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])

TCP_OFFSET = 0.1034                  # m, flange to TCP along the hand z axis
GRIPPER_MAX_WIDTH = 0.08             # m, both fingers 0..0.04 each
NOMINAL_QUAT = np.array([0.0, 1.0, 0.0, 0.0])  # TCP pointing down, fingers opening along world y

# Safety box on commanded Cartesian targets (base frame), the way SERL clips its targets. The "ready" pose
# (HOME_QPOS, TCP (0.3069, 0, 0.4869)) lies inside it by more than one full step (POS_STEP) on every face,
# so homing and then commanding never jumps: the first action after home moves the target by exactly its
# delta (a box whose top was below home clipped that first target 9 cm down).
SAFETY_BOX_LOW = np.array([0.25, -0.30, 0.01])
SAFETY_BOX_HIGH = np.array([0.70, 0.30, 0.52])
# Orientation limits: the commanded orientation R = R_nominal exp([r]x) keeps |r_i| <= this (rad),
# r about the nominal TCP axes: x and y tilt the hand, z turns it about its own axis.
ORIENTATION_LIMITS = np.array([0.5, 0.5, np.pi / 2])

# 7-D action scaling at 10 Hz (SERL's Franka configs use 0.02-0.05 m and 0.1-0.2 rad per step).
CONTROL_RATE_HZ = 10.0
POS_STEP = 0.03                      # m per step at |a| = 1
ROT_STEP = 0.15                      # rad per step at |a| = 1

# The Cartesian impedance gains of the twin's controller, written in panda.xml (listed here for the
# driver and the tests). Stiffness: SERL's COMPLIANCE_PARAM (Luo et al. 2024). Damping: near-critical
# for the twin's end-effector inertia; SERL's 89 / 7 lean on the real arm's joint friction.
TRANSLATIONAL_STIFFNESS = 2000.0     # N/m
TRANSLATIONAL_DAMPING = 200.0        # N s/m
ROTATIONAL_STIFFNESS = 150.0         # N m/rad
ROTATIONAL_DAMPING = 12.0            # N m s/rad
