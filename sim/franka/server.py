"""The Franka's protocol twin: franky-sim (PyPI) serving the libfranka network protocol from MuJoCo, so the
real franky client (robot_rl.drivers.franka.franky_backend) runs without an arm.

    python -m robot_rl.sim.franka.server --host 127.0.0.1     # prints "franky-sim ready on 127.0.0.1"

libfranka's ports are fixed (robot 1337, gripper 1338; franky-sim binds both on ``--host``), so one server
per loopback address: tests give each server its own 127.0.x.1 (:func:`free_loopback_host`). The server is
bound to a loopback address only; another address is refused. franky-sim simulates an FR3 arm alone in an
empty scene (its own MJCF, joint names fr3_joint1..7): the project's lift and peg-insertion scenes do not
run through it. It serves joint and Cartesian position/velocity motions and the gripper, not torque
control. It starts at the Panda's "ready" pose (panda.HOME_QPOS), gripper open; Ctrl-C or SIGTERM ends it
with status 0.
"""
from __future__ import annotations

import argparse
import ipaddress
import signal
import socket
import subprocess
import sys
import time

from robot_rl.sim.franka import panda

LIBFRANKA_PORTS = (1337, 1338)  # libfranka's robot command port and the Franka Hand's port


def check_loopback(host: str) -> str:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"franky-sim host {host!r}: expected a loopback IPv4 address such as 127.0.0.1 "
                         "(the protocol twin never listens beyond this machine)")
    return host


def free_loopback_host(start: int = 1) -> str:
    """A 127.0.x.1 address whose libfranka ports are free now."""
    for x in range(start, start + 250):
        host = f"127.0.{x % 250 + 1}.1"
        if all(_port_free(host, port) for port in LIBFRANKA_PORTS):
            return host
    raise RuntimeError("no loopback address has libfranka's ports 1337 and 1338 free; stop other franky-sim servers")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def spawn(host: str, timeout: float = 60.0) -> subprocess.Popen:
    """Start the server as its own process and wait until it listens (it prints its ready line)."""
    check_loopback(host)
    process = subprocess.Popen([sys.executable, "-m", "robot_rl.sim.franka.server", "--host", host],
                               stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    line = process.stdout.readline()  # blocks until the ready line or the process's end
    if not line.startswith("franky-sim ready") or time.monotonic() > deadline:
        process.kill()
        process.wait()
        raise RuntimeError(f"franky-sim on {host} did not start (said {line!r}, status {process.poll()})")
    return process


def stop(process: subprocess.Popen, timeout: float = 10.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.sim.franka.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="the loopback address to serve on")
    args = parser.parse_args(argv)
    try:
        check_loopback(args.host)
    except ValueError as err:
        parser.error(str(err))
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    import franky_sim
    from franky_sim.mujoco_simulator import MujocoSimulator

    try:
        with MujocoSimulator(enable_visualization=False) as sim:
            sim.add_robot(initial_q=tuple(panda.HOME_QPOS), initial_hand_width=panda.GRIPPER_MAX_WIDTH)
            with franky_sim.SimulationServer(sim, hostname_candidates=[args.host]) as server:
                print(f"franky-sim ready on {args.host}", flush=True)
                server.run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
