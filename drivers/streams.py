"""Timestamped message streams, aligned by stamp: the recorder's observations and the policy node's
hardware observation source share this.

    streams = ObservationStreams(node, spec, keys=("state", "front"))   # subscribes on ``node``
    obs, ages = streams.observation_at(t)     # each stream's latest message stamped at or before t
    observe = topic_observation(node, spec)   # () -> obs at the present time, for PolicyNode

Which topic feeds which key of the embodiment spec (names relative to the node's namespace):

| key           | topic              | type                                    | QoS (subscriber)            |
|---------------|--------------------|-----------------------------------------|-----------------------------|
| `state`       | `joint_states`     | sensor_msgs/JointState                  | best effort, last 200       |
| `task_state`  | `task_state`       | sensor_msgs/JointState (named vector)   | reliable, last 10           |
| a camera `c`  | `c/image_raw`      | sensor_msgs/Image, rgb8 or bgr8         | best effort, last 30        |

``state`` is built from the joint positions by the robot's forward kinematics (robot_rl.drivers.proprio:
the twin's layout). A camera image of another size than the spec's is centre-cropped to the spec's
aspect ratio and resized (area interpolation). Deep subscriber queues keep every message through a
stall of the executor (a store commit), so rows are still aligned on the messages' own stamps.

Time: stamps are seconds of the system clock (the driver's node clock, the cameras' capture time); a
stream is *stale* when its newest message is older than ``stale_after_s`` at the time asked for, or
when it has none. Across machines the clocks must be synchronized (chrony/PTP) for ages to mean
anything.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from robot_rl.datasets import EmbodimentSpec
from robot_rl.drivers.camera_node import msg_to_image, stamp_to_seconds
from robot_rl.drivers.proprio import proprio_builder
from robot_rl.drivers.stamped import AlignedStreams, StaleStreamError, StreamBuffer, stale_reasons  # noqa: F401

JOINT_STATES_QOS = QoSProfile(depth=200, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                              durability=DurabilityPolicy.VOLATILE)
IMAGE_QOS = QoSProfile(depth=30, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)
TASK_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def fit_image(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """``rgb`` centre-cropped to the aspect ratio of height x width, then resized to it (area)."""
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return rgb
    if h * width > w * height:   # too tall: crop rows
        keep = round(w * height / width)
        rgb = rgb[(h - keep) // 2:(h - keep) // 2 + keep]
    elif h * width < w * height:  # too wide: crop columns
        keep = round(h * width / height)
        rgb = rgb[:, (w - keep) // 2:(w - keep) // 2 + keep]
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=cv2.INTER_AREA)


def header_seconds(msg) -> float:
    return stamp_to_seconds(msg.header.stamp)


class ObservationStreams(AlignedStreams):
    """Subscribes ``node`` to the topics behind ``keys`` (default: every observation key of ``spec``)
    and builds spec-keyed observations from the messages stamped at or before a given time."""

    def __init__(self, node: Node, spec: EmbodimentSpec, keys: Sequence[str] | None = None, *,
                 stale_after_s: float = 0.5):
        keys = tuple(spec.obs_keys if keys is None else keys)
        unknown = [k for k in keys if k not in spec.obs_keys]
        if unknown:
            raise ValueError(f"keys: {unknown} are not observation keys of the {spec.name!r} spec "
                             f"(it has {list(spec.obs_keys)})")
        super().__init__({}, stale_after_s=stale_after_s, decode=self.decode)
        self.spec, self.keys = spec, keys
        self._proprio = proprio_builder(spec.name) if "state" in keys else None
        for key in keys:
            if key == "state":
                self._subscribe(node, key, JointState, "joint_states", JOINT_STATES_QOS, 400)
            elif key in spec.cameras:
                self._subscribe(node, key, Image, f"{key}/image_raw", IMAGE_QOS, 64)
            elif key == "task_state":
                self._subscribe(node, key, JointState, "task_state", TASK_QOS, 200)
            else:
                raise ValueError(f"key {key!r}: no topic carries it (topics exist for state, task_state and "
                                 "cameras); drop it from the keys")

    def _subscribe(self, node: Node, key: str, msg_type, topic: str, qos: QoSProfile, max_samples: int) -> None:
        buffer = self.buffers[key] = StreamBuffer(topic, max_samples=max_samples)
        node.create_subscription(msg_type, topic, lambda msg: buffer.add(header_seconds(msg), msg), qos)

    def decode(self, key: str, msg) -> np.ndarray:
        """The spec array of one received message of ``key`` (proprioception from joints, an image fitted)."""
        if key == "state":
            return self._proprio(msg.name, msg.position, msg.velocity)
        if key in self.spec.cameras:
            camera = self.spec.cameras[key]
            return fit_image(msg_to_image(msg), camera.height, camera.width)
        expected = self.spec.state[key].shape
        value = np.asarray(msg.position, dtype=np.float32)
        if value.shape != expected:
            raise ValueError(f"{self.buffers[key].name}: expected {expected} values for key {key!r}, found "
                             f"{value.shape}; the publisher runs another task than the spec's")
        return value


class TopicObservation:
    """An observation source for PolicyNode built from ROS topics (hardware): calling it returns the
    observation at the present time, or raises StaleStreamError naming the streams that stopped."""

    def __init__(self, node: Node, spec: EmbodimentSpec, keys: Sequence[str] | None = None, *,
                 stale_after_s: float = 0.5):
        self.streams = ObservationStreams(node, spec, keys, stale_after_s=stale_after_s)

    def __call__(self) -> dict[str, np.ndarray]:
        return self.streams.observation_at(time.time())[0]

    def stale(self) -> dict[str, str]:
        return self.streams.stale()


def topic_observation(node: Node, spec: EmbodimentSpec, keys: Sequence[str] | None = None, *,
                      stale_after_s: float = 0.5) -> TopicObservation:
    """The hardware observation source: ``state`` from joint_states (+ forward kinematics) and cameras from
    their image topics, subscribed on ``node`` (spin it in the policy node's executor). ``keys`` default:
    the spec's observation keys but ``task_state``, which hardware does not have."""
    if keys is None:
        keys = [k for k in spec.obs_keys if k != "task_state"]
    return TopicObservation(node, spec, keys, stale_after_s=stale_after_s)
