"""The WidowX 250 S embodiment (see robot_rl.sim.specs): what its twin and its driver record. No MuJoCo."""
from robot_rl.datasets import KeySpec
from robot_rl.sim.specs import TaskFacts
from robot_rl.sim.widowx import robot as wx

CONTROL_RATE_HZ = wx.CONTROL_RATE_HZ
ACTION_DIM = wx.ACTION_DIM
CAMERAS = ("front", "wrist")
STATE_DIM = 14
STATE = KeySpec((STATE_DIM,), "float32", "rad[0:6], 1[6], m[7:10], quat[10:14]", description=(
    "[0:6] arm joint positions (rad) in the order " + ", ".join(wx.ARM_JOINTS) + "; "
    "[6] gripper opening in [0, 1] (1 = fully open, 74 mm between the pads; 0 = 30 mm); "
    "[7:10] end-effector (ee_gripper) position in the base frame (m); "
    "[10:14] end-effector orientation as a quaternion (w, x, y, z), w >= 0; "
    "(1, 0, 0, 0) is the gripper pointing forward along +x, home points it down"))
ACTION_DESCRIPTION = (
    f"Bridge-style delta end-effector action at {wx.CONTROL_RATE_HZ:g} Hz: "
    f"[0:3] dx, dy, dz of the commanded gripper position in the base frame "
    f"(1 = {wx.MAX_DELTA_POS} m); [3:6] droll, dpitch, dyaw about the fixed base axes "
    f"(1 = {wx.MAX_DELTA_ROT} rad); [6] gripper opening, absolute (-1 closed, 1 open). "
    f"The commanded position is clipped to the box {wx.WORKSPACE_LOW.tolist()} .. "
    f"{wx.WORKSPACE_HIGH.tolist()} m")
TASKS = {
    "reach": TaskFacts(
        KeySpec((3,), "float32", "m", description="target position (x, y, z) in the base frame"),
        instruction="move the gripper to the green ball", max_steps=40),
    "pick_place": TaskFacts(
        KeySpec((10,), "float32", "m[0:3], quat[3:7], m[7:10]", description=(
            "[0:3] cube centre position (m), [3:7] cube orientation quaternion (w, x, y, z), "
            "[7:10] bowl position (centre of its base on the table, m); all in the base frame")),
        instruction="put the cube in the bowl", max_steps=80),
}
