"""The RC car embodiment (see robot_rl.sim.specs): what its twin and its driver record. No MuJoCo."""
from robot_rl.datasets import KeySpec
from robot_rl.sim.rc_car import constants as car
from robot_rl.sim.specs import TaskFacts

CONTROL_RATE_HZ = car.CONTROL_RATE_HZ
ACTION_DIM = car.ACTION_DIM
CAMERAS = ("front",)
STATE_DIM = 8
# The state's entries by name: how the driver publishes it on joint_states (a named vector) for the recorder.
STATE_NAMES = ("wheel_speed", "steering", "gyro_x", "gyro_y", "gyro_z", "accel_x", "accel_y", "accel_z")
ACTION_NAMES = ("steering", "throttle")
STATE = KeySpec((STATE_DIM,), "float32", "m/s[0], rad[1], rad/s[2:5], m/s^2[5:8]", description=(
    "[0] rear wheel speed (VESC ERPM / 4614); [1] steering angle, + = left; [2:5] IMU gyro x, y, z; "
    "[5:8] IMU accelerometer x, y, z (specific force, +9.81 on z at rest); "
    "car frame: x forward, y left"))
ACTION_DESCRIPTION = (f"steering * {car.STEER_LIMIT} rad (servo target, + = left), "
                      f"throttle * {car.MAX_SPEED} m/s (VESC speed-mode target, - = reverse)")
TASKS = {
    "goal": TaskFacts(
        KeySpec((5,), "float32", "m[0:2], rad[2], m[3:5]",
                description="[0:3] car x, y, yaw in the arena frame; [3:5] goal x, y"),
        instruction="drive to the goal without hitting anything", max_steps=200),
}
