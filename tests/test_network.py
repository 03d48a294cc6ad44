"""What the project's DDS traffic can be reached on (robot_rl.drivers.network): the sockets of real
processes, read from /proc (the socket inodes in /proc/<pid>/fd, their addresses in /proc/<pid>/net/*)."""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from robot_rl.drivers.network import (
    LOOPBACK_PROFILE,
    MODE_VARIABLE,
    NetworkModeError,
    apply_dds_environment,
    dds_environment,
    network_mode,
)

OUR_VARIABLES = (MODE_VARIABLE, "FASTDDS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE")


def inet_sockets(pid: int) -> list[tuple[str, str, int]]:
    """(protocol, local address, local port) of every UDP and TCP socket process ``pid`` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for protocol in ("udp", "udp6", "tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{protocol}") as table:
            next(table)
            for row in table:
                fields = row.split()
                if fields[9] in inodes:
                    found.append((protocol, *_address(fields[1], protocol.endswith("6"))))
    return found


def _address(hex_address: str, v6: bool) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if v6:  # four host-order 32-bit words
        return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))), int(port, 16)
    return socket.inet_ntoa(raw[::-1]), int(port, 16)


def exposed(sockets) -> list[tuple[str, str, int]]:
    return [s for s in sockets if not ipaddress.ip_address(s[1]).is_loopback]


def descendants(pid: int) -> list[int]:
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def as_a_new_user(**extra) -> dict[str, str]:
    """This environment without what conftest applied: a shell with the Makefile's exports."""
    env = {k: v for k, v in os.environ.items() if k not in OUR_VARIABLES}
    return {**env, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", **extra}


def test_bringup_graph_binds_dds_only_to_loopback(tmp_path):
    """The real teleop_collect graph on the twin: while episodes are recorded (discovery done, data
    flowing), no socket of any of its processes is bound to anything but 127.0.0.1."""
    command = [sys.executable, "-m", "robot_rl.cli.main", "bringup", "teleop_collect", "backend=twin",
               "teleop=scripted", "task=reach", "episodes=1", f"out={tmp_path / 'wx.zarr'}", f"run_dir={tmp_path / 'run'}"]
    graph = subprocess.Popen(command, cwd=tmp_path, env=as_a_new_user(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    recording, lines = threading.Event(), []

    def read():
        for line in graph.stdout:
            lines.append(line)
            if "[recorder]: episode 0 started" in line:
                recording.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert recording.wait(120), "the graph never started recording:\n" + "".join(lines[-40:])
        sockets = {pid: inet_sockets(pid) for pid in [graph.pid, *descendants(graph.pid)]}
        shared_memory = {pid: "/dev/shm/fastdds_" in Path(f"/proc/{pid}/maps").read_text() for pid in sockets}
    finally:
        status = graph.wait(120)
        reader.join(5)
    assert status == 0, "".join(lines[-40:])
    nodes = [pid for pid, held in sockets.items() if held]
    assert len(nodes) >= 2, f"expected the recorder and the robot process to hold DDS sockets, found {sockets}"
    assert {pid: exposed(held) for pid, held in sockets.items() if exposed(held)} == {}
    assert all(shared_memory[pid] for pid in nodes)  # same-host data also moves through shared memory


PROBE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from test_network import inet_sockets
from robot_rl.drivers.network import apply_dds_environment
apply_dds_environment()
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node("network_probe")
node.create_publisher(String, "network_probe", 1)
print(json.dumps(inet_sockets(os.getpid())))
"""


def run_probe(env, isolated: bool) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", PROBE, str(Path(__file__).parent)]
    if isolated:
        command = ["unshare", "--net", "--map-root-user", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd="/")


def probe_sockets(env, *, isolated: bool = False) -> list[tuple[str, str, int]]:
    """The sockets of a process holding one ROS 2 node started in ``env``; ``isolated``: in a network
    namespace of its own (only a loopback interface, down), so nothing it sends can leave it."""
    done = run_probe(env, isolated)
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(s) for s in json.loads(done.stdout.strip().splitlines()[-1])]


def test_a_node_started_directly_binds_only_to_loopback():
    """A node process that applies the mode itself (as every driver main does), with only the Makefile's
    LOCALHOST in its environment."""
    sockets = probe_sockets(as_a_new_user())
    assert sockets and exposed(sockets) == []


def _can_isolate() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--net", "--map-root-user", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_isolate(), reason="needs `unshare --net --map-root-user` (a network namespace "
                                               "keeps the subnet-mode node's multicast off the real network)")
def test_the_subnet_opt_in_binds_every_interface():
    """The documented opt-in (the older ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET, or ROBOT_RL_NETWORK=subnet)
    opens DDS on 0.0.0.0: reachable from every interface of the machine."""
    for opt_in in ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}, {MODE_VARIABLE: "subnet"}):
        sockets = probe_sockets(as_a_new_user(**opt_in), isolated=True)
        assert ("udp", "0.0.0.0") in {s[:2] for s in sockets}, (opt_in, sockets)


def test_the_mode_comes_from_the_environment():
    assert network_mode({}) == "localhost"
    assert network_mode({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}) == "localhost"
    assert network_mode({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}) == "subnet"
    assert network_mode({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", MODE_VARIABLE: "localhost"}) == "localhost"
    with pytest.raises(NetworkModeError, match=f"{MODE_VARIABLE}='lan' is unknown: expected one of localhost, subnet"):
        network_mode({MODE_VARIABLE: "lan"})


def test_applying_a_mode_replaces_what_another_mode_left():
    child = apply_dds_environment({**dds_environment("localhost"), MODE_VARIABLE: "subnet"})
    assert child == {MODE_VARIABLE: "subnet", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    own = {MODE_VARIABLE: "subnet", "FASTDDS_DEFAULT_PROFILES_FILE": "/etc/lab/fastdds.xml"}
    assert apply_dds_environment(own)["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/lab/fastdds.xml"  # the user's own
    assert apply_dds_environment({})["FASTDDS_DEFAULT_PROFILES_FILE"] == str(LOOPBACK_PROFILE)


def test_secured_mode_names_the_keystore_and_enclave_it_needs(tmp_path):
    with pytest.raises(NetworkModeError, match="needs ROS_SECURITY_KEYSTORE"):
        dds_environment("secured", {})
    with pytest.raises(NetworkModeError, match="ros2 security create_enclave"):
        dds_environment("secured", {"ROS_SECURITY_KEYSTORE": str(tmp_path)})


def test_secured_mode_fails_closed_where_dds_security_is_missing(tmp_path):
    """The pip wheels' rmw_fastrtps is built without DDS security: a secured node must refuse to start
    (Enforce), never join the graph unsecured. A ROS 2 install with security: docker/README.md."""
    (tmp_path / "enclaves" / "robot_rl" / "robot").mkdir(parents=True)
    env = as_a_new_user(**{MODE_VARIABLE: "secured", "ROS_SECURITY_KEYSTORE": str(tmp_path)})
    done = run_probe(env, isolated=_can_isolate())  # were it to start, its discovery stays off the network
    assert done.returncode != 0
    assert "doesn't have the security libraries" in done.stderr, done.stderr[-2000:]
