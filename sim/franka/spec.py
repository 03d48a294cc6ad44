"""The Franka embodiment (see robot_rl.sim.specs): what its twin and its driver record. No MuJoCo."""
from robot_rl.datasets import KeySpec
from robot_rl.sim.franka import panda
from robot_rl.sim.specs import TaskFacts

CONTROL_RATE_HZ = panda.CONTROL_RATE_HZ
ACTION_DIM = 7
CAMERAS = ("front", "wrist")
STATE_DIM = 21
STATE = KeySpec((STATE_DIM,), "float32", "mixed", description=(
    "joint positions (7, rad), TCP position (3, m, base frame), TCP quaternion (4, w x y z, "
    "sign on the side of the nominal downward pose), gripper width (1, m), "
    "TCP linear velocity (3, m/s), TCP angular velocity (3, rad/s)"))
ACTION_DESCRIPTION = (f"delta TCP position (3, x{panda.POS_STEP} m), delta rotation vector "
                      f"(3, x{panda.ROT_STEP} rad), both in the base frame; gripper width (1): -1 closed, +1 open")
TASKS = {
    "lift": TaskFacts(
        KeySpec((7,), "float32", "mixed", description="cube position (3, m), cube quaternion (4, w x y z)"),
        instruction="pick up the red cube", max_steps=50),
    "peg_insert": TaskFacts(
        KeySpec((6,), "float32", "m", description="peg tip position (3), hole top centre (3)"),
        instruction="insert the peg into the hole", max_steps=60,
        action_note=" (ignored here: the gripper holds the peg)"),
}
