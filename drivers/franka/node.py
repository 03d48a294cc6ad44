"""The Franka robot process: the driver node on the MuJoCo twin or on the arm through franky (libfranka),
and with the twin the nodes that share its physics (robot_rl.drivers.robot_process).

    python -m robot_rl.drivers.franka.node --backend franky --port 172.16.0.2 --enable-torque
    python -m robot_rl.sim.franka.server --host 127.0.0.1 &        # the protocol twin, no arm needed
    python -m robot_rl.drivers.franka.node --backend franky --port 127.0.0.1
    python -m robot_rl.drivers.franka.node --backend twin --task lift --cameras front,wrist --twin-task
    python -m robot_rl.drivers.franka.node --backend twin --task peg_insert --scripted-episodes 3

``--port`` is the robot's FCI address (the Control's IP, Franka's default 172.16.0.2), or the loopback
address a franky-sim server listens on. Commands arrive at the 10 Hz control rate (--command-rate); the
bus (--rate, 50 Hz) reads the state and resends the target; libfranka's own 1 kHz loop runs in franky's
thread. Motion type, faults and recovery: robot_rl.drivers.franka.franky_backend. Ctrl-C or SIGTERM stops
the motion and ends the process with status 0.
"""
from __future__ import annotations

import argparse

from robot_rl.drivers import robot_process
from robot_rl.drivers.franka.robot import DEFINITION


def make_node(backend, args: argparse.Namespace):
    """A DriverNode for a connected Franka backend (robot_rl.drivers.franka.robot)."""
    return robot_process.make_node(DEFINITION, backend, args, "franka_panda")


def main(argv=None) -> None:
    robot_process.main(DEFINITION, argv, description=__doc__, hardware="franka_panda",
                       port_help="the robot's FCI address, or a franky-sim server's loopback address (franky backend)")


if __name__ == "__main__":
    main()
