"""Stream alignment by stamp, and the hardware observation source: ``state`` built from joint_states and
the forward kinematics equals the twin's own ``state``; camera frames arrive as the spec's images; a
stream that stops is named. Real DDS on loopback with the WidowX twin behind a real DriverNode."""
from __future__ import annotations

import itertools
import os
import threading
import time

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from robot_rl.drivers.camera_node import twin_camera_node
from robot_rl.drivers.driver_node import DriverNode
from robot_rl.drivers.proprio import proprio_builder
from robot_rl.drivers.safety import SafetyFilter, widowx_limits
from robot_rl.drivers.streams import StaleStreamError, StreamBuffer, fit_image, topic_observation
from robot_rl.drivers.widowx.robot import WidowXProprio
from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend
from robot_rl.sim import make_env
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.control import DeltaPoseController
from ros_helpers import wait_for

_namespaces = itertools.count()


# --- buffers --------------------------------------------------------------------------------------

def test_stream_buffer_gives_the_latest_sample_at_or_before_a_time():
    buffer = StreamBuffer("s", keep_s=1.0)
    for stamp in (10.0, 10.2, 10.1, 10.4):  # one out of order
        buffer.add(stamp, f"v{stamp}", received=stamp + 0.01)
    assert buffer.latest_at(9.9) is None
    assert buffer.latest_at(10.15).value == "v10.1"
    assert buffer.latest_at(10.2).value == "v10.2", "at or before: a sample stamped exactly t counts"
    assert [s.stamp for s in buffer.after(10.1, before=10.4)] == [10.2]
    assert buffer.staleness(10.6, 0.5) is None
    assert buffer.staleness(11.0, 0.5) == "last message 0.60 s old"
    assert StreamBuffer("empty").staleness(0.0, 0.5) == "no message yet"
    buffer.add(11.3, "late")
    assert [s.stamp for s in buffer.after(0.0)] == [10.4, 11.3], "samples older than keep_s are dropped"


def test_fit_image_crops_to_the_aspect_ratio_then_resizes():
    wide = np.zeros((480, 640, 3), np.uint8)
    wide[:, :80] = 255  # only in the columns a centre crop to 480 x 480 removes
    out = fit_image(wide, 128, 128)
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8 and out.max() == 0
    same = np.arange(128 * 128 * 3, dtype=np.uint8).reshape(128, 128, 3)
    assert fit_image(same, 128, 128) is same


# --- proprioception from joints -------------------------------------------------------------------

def test_state_from_joints_equals_the_twins_state():
    env = make_env("widowx", "reach").unwrapped
    env.reset(seed=4)
    proprio = WidowXProprio()
    rng = np.random.default_rng(0)
    model, data = env.model, env.data
    import mujoco

    for _ in range(5):
        q = np.clip(wx.HOME_QPOS + rng.uniform(-0.6, 0.6, 6), wx.ARM_LOWER, wx.ARM_UPPER)
        finger = rng.uniform(*wx.FINGER_LIMITS)
        for name, value in zip(wx.ARM_JOINTS, q):
            data.qpos[model.joint(name).qposadr[0]] = value
        for name in wx.FINGER_JOINTS:
            data.qpos[model.joint(name).qposadr[0]] = finger
        mujoco.mj_forward(model, data)
        expected = env.observe()["state"]
        names = list(reversed(wx.JOINT_NAMES))  # a driver may list joints in any order
        found = proprio(names, list(reversed([*q, finger])))
        assert found.dtype == np.float32 and found.shape == (14,)
        np.testing.assert_allclose(found, expected, atol=1e-5)
    env.close()
    with pytest.raises(ValueError, match="missing \\['gripper'\\]"):
        proprio(list(wx.ARM_JOINTS), np.zeros(6))
    with pytest.raises(ValueError, match="robot='ur5'"):
        proprio_builder("ur5")


def test_franka_state_from_joints_and_velocities_equals_the_twins_state():
    import mujoco

    from robot_rl.sim.franka import panda

    env = make_env("franka", "lift").unwrapped
    env.reset(seed=2)
    proprio = proprio_builder("franka")
    rng = np.random.default_rng(1)
    model, data = env.model, env.data
    for _ in range(5):
        q = panda.HOME_QPOS + rng.uniform(-0.4, 0.4, 7)
        dq = rng.uniform(-0.5, 0.5, 7)
        finger = rng.uniform(0.0, panda.GRIPPER_MAX_WIDTH / 2)
        data.qpos[:7], data.qvel[:] = q, 0.0
        data.qvel[:7] = dq
        for name in panda.FINGER_JOINT_NAMES:
            data.qpos[model.joint(name).qposadr[0]] = finger
        mujoco.mj_forward(model, data)
        expected = env.observe()["state"]
        names = [*panda.JOINT_NAMES, "finger"]
        found = proprio(names[::-1], [*q, finger][::-1], [*dq, 0.0][::-1])  # any joint order
        assert found.dtype == np.float32 and found.shape == (21,)
        np.testing.assert_allclose(found, expected, atol=1e-4)
    env.close()


# --- the observation source over DDS --------------------------------------------------------------

@pytest.fixture
def twin_topics(context):
    """(backend, namespace, executor) with a twin driver (torque off: the arm holds) and a front camera."""
    backend = WidowXTwinBackend(task="reach", seed=2)
    backend.connect()
    ns = f"/streams_test_{os.getpid()}_{next(_namespaces)}"
    safety = SafetyFilter(widowx_limits(control_period=0.2), control_period=0.2)
    driver = DriverNode(backend, safety, np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1]), context=context, namespace=ns)
    camera = twin_camera_node(backend, "front", fps=10.0, context=context, namespace=ns)
    executor = SingleThreadedExecutor(context=context)
    for node in (driver, camera):
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield backend, ns, executor, camera
    finally:
        executor.shutdown()
        thread.join(timeout=5.0)
        driver.shutdown_backend()
        for node in (driver, camera):
            node.destroy_node()


def test_topic_observation_builds_the_spec_keys_from_joint_states_and_cameras(context, twin_topics):
    backend, ns, executor, camera = twin_topics
    spec = make_env("widowx", "reach", cameras=("front",)).unwrapped.embodiment
    node = Node("policy_observation", context=context, namespace=ns)
    try:
        check_topic_observation(node, spec, backend, executor, camera)
    finally:
        executor.remove_node(node)
        node.destroy_node()


def check_topic_observation(node, spec, backend, executor, camera):
    executor.add_node(node)
    observe = topic_observation(node, spec, stale_after_s=0.5)
    wait_for(lambda: not observe.stale(), 5.0, "joint_states and front/image_raw")
    # the arm settles under gravity after the reset: compare once it is still
    wait_for(lambda: np.abs(backend.read().velocity).max() < 1e-3, 5.0, "the twin arm to come to rest")
    time.sleep(0.05)
    obs = observe()
    assert sorted(obs) == ["front", "state"], "task_state is twin-only: not in the hardware source"
    with backend.lock:
        twin = backend.env.observe(cameras=("front",))
        rendered = twin["front"]
    np.testing.assert_allclose(obs["state"], twin["state"], atol=2e-3)
    assert obs["front"].shape == (128, 128, 3) and obs["front"].dtype == np.uint8
    assert np.abs(obs["front"].astype(int) - rendered).mean() < 2.0, "the frame is not the twin's front view"

    executor.remove_node(camera)  # the camera stops publishing
    wait_for(lambda: list(observe.stale()) == ["front/image_raw"], 3.0, "only the camera stream to go stale")
    with pytest.raises(StaleStreamError, match="front/image_raw"):
        observe()


# --- the policy node on the topics (the hardware path of its command line) ------------------------

@pytest.fixture(scope="module")
def state_only_checkpoint(tmp_path_factory):
    """A tiny, untrained SAC checkpoint on widowx_reach that reads only ``state`` (what hardware has)."""
    from robot_rl.cli.main import main

    run = tmp_path_factory.mktemp("streams") / "run"
    main(["train", "algo=sac", "task=widowx_reach", "obs_keys=[state]", "algo.agent.hidden=[32,32]",
          "algo.batch_size=16", "algo.schedule.random_steps=40", "algo.schedule.online_steps=80",
          "eval.episodes=1", "eval.video=false", f"run_dir={run}"])
    return run


def test_policy_node_command_line_drives_the_driver_from_the_topics(context, state_only_checkpoint):
    import subprocess
    import sys

    from sensor_msgs.msg import JointState

    from robot_rl.drivers.recorder_node import APPLIED_QOS

    backend = WidowXTwinBackend(task="reach", seed=2)
    backend.connect()
    ns = f"/streams_test_{os.getpid()}_{next(_namespaces)}"
    safety = SafetyFilter(widowx_limits(control_period=0.2), control_period=0.2)
    driver = DriverNode(backend, safety, np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1]),
                        ee_controller=DeltaPoseController(),
                        opening_from_gripper=lambda finger: float(wx.width_to_opening(2 * finger)),
                        context=context, namespace=ns)
    assert driver.enable_torque(True)[0]
    listener = Node("applied_listener", context=context, namespace=ns)
    applied = []
    listener.create_subscription(JointState, "ee_command_applied", applied.append, APPLIED_QOS)
    executor = SingleThreadedExecutor(context=context)
    for node in (driver, listener):
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "robot_rl.drivers.policy_node", "--checkpoint", str(state_only_checkpoint),
             "--observation", "topics", "--steps", "5", "--name", "topics_policy", "--ros-args", "-r",
             f"__ns:={ns}"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "5 actions sent" in result.stdout, result.stdout
        wait_for(lambda: len(applied) >= 5, 3.0, "the driver to apply the policy's 5 commands")
    finally:
        executor.shutdown()
        thread.join(timeout=5.0)
        driver.shutdown_backend()
        driver.destroy_node()
        listener.destroy_node()
