"""Every test runs with DDS sockets on 127.0.0.1 only (robot_rl.drivers.network's localhost mode, whatever
the caller opted into) in a private domain, set before anything loads rclpy; ROS 2 tests share one rclpy
context per module through the ``context`` fixture."""
from __future__ import annotations

import os

import pytest

import robot_rl.sim  # noqa: F401  picks MuJoCo's GL backend before a test module imports mujoco itself
from robot_rl.drivers.network import MODE_VARIABLE, apply_dds_environment

os.environ[MODE_VARIABLE] = "localhost"
apply_dds_environment()
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))


@pytest.fixture(scope="module")
def context():
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture
def spinner(context):
    """Nodes spun in a background thread (ros_helpers.Spinner), stopped and destroyed after the test."""
    from ros_helpers import Spinner

    spin = Spinner(context)
    yield spin
    spin.stop()


@pytest.fixture(autouse=True)
def scheduling_unchanged():
    """A test must leave the test process's scheduling as it found it: every process started afterwards
    inherits it, and a real-time busy-polling driver starves the kernel's serial work on its core (this is how
    an AV1 encode once made the Dynamixel tests time out under load; see datasets/formats/video.py)."""
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    yield
    after = os.sched_getscheduler(0), os.sched_getparam(0)
    if after != before:
        os.sched_setscheduler(0, *before)
        pytest.fail(f"the test changed the process's scheduling from {before} to {after}; restore it "
                    "(datasets.formats.video.caller_scheduling_kept)")


@pytest.fixture(scope="module")
def franky_sim_host():
    """franky-sim, the Franka's protocol twin (robot_rl.sim.franka.server), as its own process on a free
    loopback address (libfranka's ports are fixed: one server per address), stopped after the module."""
    pytest.importorskip("franky")
    pytest.importorskip("franky_sim")
    from robot_rl.sim.franka import server

    host = server.free_loopback_host()
    process = server.spawn(host)
    yield host
    assert server.stop(process) == 0  # SIGTERM ends franky-sim cleanly
