"""The WidowX 250 S robot process: the driver node on the twin or the Dynamixel servos, and with the twin
the nodes that must share its physics (cameras, task state, the scripted operator).

    python -m robot_rl.drivers.widowx.node --backend dynamixel --port /dev/ttyDXL --rate 50
    python -m robot_rl.drivers.widowx.node --backend twin --task pick_place --cameras front --twin-task
    python -m robot_rl.drivers.widowx.node --backend twin --task reach --scripted-episodes 3
    python -m robot_rl.drivers.widowx.node --backend twin --task reach --twin-task --policy runs/finetune/<run>

With ``--backend twin`` the MuJoCo twin lives in this process, so everything that reads its state runs
here too, on the same executor (ROS 2 composition, without the component containers of a full ROS
install): ``--cameras`` adds a twin camera node per name, ``--twin-task`` the task node (privileged
``task_state``, reward and success, and the ``reset_task`` service: robot_rl.drivers.twin_task_node),
and ``--scripted-episodes N`` a teleop node playing the task's scripted expert for N episodes (it needs
the twin's true state; the process exits after them, and ``--wait-for-recorder`` holds the first start
until a recorder listens). ``--policy <run folder>`` adds the policy node of a fine-tuning run
(robot_rl.drivers.policy_node, reading the twin's observation): it waits for the learner's first online
checkpoint, samples its actions, and reloads each newer checkpoint; ``--scripted-takeover`` adds a teleop
node in takeover mode whose operator is the task's expert, taking over when the policy strays
(robot_rl.drivers.takeover.ScriptedTakeover; ``--takeover-budget`` caps its ticks). On hardware, cameras and teleop are processes of their own
(robot_rl.drivers.camera_node, robot_rl.drivers.teleop); ``robot-rl bringup`` starts them.

DDS stays on this machine unless asked otherwise: robot_rl.drivers.network's localhost mode (export
ROBOT_RL_NETWORK=subnet to reach other machines). Torque starts off (call the enable_torque service, or pass
--enable-torque; the twin's scripted operator turns it on). Topics and services: see
robot_rl.drivers.driver_node.

The safety filter's control_period is the *command* period (--command-rate, default the Bridge rate of
5 Hz = 0.2 s), not the bus period: it sizes max_step, the largest move one command may ask for, and the
move allowed to the first command after a hold. Passing the 50 Hz bus period would cap each 5 Hz command
at a tenth of the allowed joint velocity. The velocity limit (max_velocity x the time since the last
command) holds at any rate, including the node's own goal pursuit on every bus tick.
"""
from __future__ import annotations

import argparse

from robot_rl.drivers import robot_process
from robot_rl.drivers.robot_process import WaitForListener  # noqa: F401  (tests and tools import it here)
from robot_rl.drivers.widowx.robot import DEFINITION

OPTIONS = {"description": __doc__, "port_help": "the U2D2's serial port (dynamixel backend)", "hardware": "widowx_250s"}


def parse_args(argv=None) -> argparse.Namespace:
    return robot_process.parse_args(DEFINITION, argv, description=__doc__, port_help=OPTIONS["port_help"])


def make_backend(args: argparse.Namespace, image_size: tuple[int, int] = (128, 128)):
    return robot_process.make_backend(DEFINITION, args, image_size)


def make_node(backend, args: argparse.Namespace):
    """A DriverNode for a connected WidowX backend (robot_rl.drivers.widowx.robot)."""
    return robot_process.make_node(DEFINITION, backend, args, OPTIONS["hardware"])


def main(argv=None) -> None:
    robot_process.main(DEFINITION, argv, **OPTIONS)


if __name__ == "__main__":
    main()
