"""Every test runs with DDS sockets on 127.0.0.1 only (robot_rl.drivers.network's localhost mode, whatever
the caller opted into) in a private domain, set before anything loads rclpy; ROS 2 tests share one rclpy
context per module through the ``context`` fixture."""
from __future__ import annotations

import os

import pytest

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
