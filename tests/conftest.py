"""Every test runs with DDS on loopback in a private domain (set before anything loads rclpy); ROS 2
tests share one rclpy context per module through the ``context`` fixture."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
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
