"""The camera node over real DDS on loopback: a real OpenCV capture (of a video file written here, the
stand-in for a device: cv2.VideoCapture opens both the same way) and real MuJoCo rendering of the WidowX
twin. No mocks.

Each video frame is one solid colour, red high and blue low, with green counting the frame index: a frame
received over ROS is matched exactly with the frame OpenCV decodes from the file, and its colour with the
colour written, so a red/blue swap or a reordering fails.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
# Before anything imports mujoco (twin_backend does, ahead of robot_rl.sim): picks MUJOCO_GL=egl headless.
pytest.importorskip("robot_rl.sim")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from robot_rl.drivers.camera import CameraError, OpenCVCamera  # noqa: E402
from robot_rl.drivers.camera_node import (  # noqa: E402
    DIAGNOSTICS_QOS,
    IMAGE_QOS,
    CameraNode,
    image_to_msg,
    msg_to_image,
    stamp_to_seconds,
    twin_camera_node,
)

WIDTH, HEIGHT = 160, 120
VIDEO_FPS = 25.0
VIDEO_FRAMES = 75
RED, BLUE = 230, 20
_namespaces = itertools.count()


def frame_colour(index: int) -> tuple[int, int, int]:
    return RED, 10 + 3 * index, BLUE


def write_video(path, frames: int = VIDEO_FRAMES) -> list[np.ndarray]:
    """Writes the solid-colour video; returns its frames as OpenCV decodes them, converted to RGB here."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for index in range(frames):
        writer.write(np.full((HEIGHT, WIDTH, 3), frame_colour(index)[::-1], np.uint8))  # BGR on disk
    writer.release()
    capture, decoded = cv2.VideoCapture(str(path)), []
    while (frame := capture.read()[1]) is not None:
        decoded.append(np.ascontiguousarray(frame[..., ::-1]))
    capture.release()
    assert len(decoded) == frames
    return decoded


class Listener(Node):
    """Records every image (with its receive time) and every diagnostic status of one camera."""

    def __init__(self, context, namespace: str, camera: str):
        super().__init__("camera_listener", context=context, namespace=namespace)
        self.images: list[tuple[Image, float]] = []
        self.statuses: list[tuple[DiagnosticStatus, float]] = []
        self.create_subscription(Image, f"{camera}/image_raw", self._on_image, IMAGE_QOS)
        self.create_subscription(DiagnosticArray, "diagnostics", self._on_diagnostics, DIAGNOSTICS_QOS)

    def _on_image(self, msg: Image):
        self.images.append((msg, time.time()))

    def _on_diagnostics(self, msg: DiagnosticArray):
        self.statuses.extend((status, time.time()) for status in msg.status)


@contextmanager
def spinning(context, make_camera_node, camera: str):
    """(camera node, listener) spun by one single-threaded executor in a background thread."""
    namespace = f"/camera_test_{os.getpid()}_{next(_namespaces)}"
    listener = Listener(context, namespace, camera)
    node = make_camera_node(namespace)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield node, listener
    finally:
        executor.shutdown()
        thread.join(timeout=5)
        node.destroy_node()
        listener.destroy_node()


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def match_frame(image: np.ndarray, decoded: list[np.ndarray]) -> int:
    matches = [i for i, frame in enumerate(decoded) if np.array_equal(image, frame)]
    assert len(matches) == 1, "a received frame is not exactly one of the video's frames"
    return matches[0]


# --- one recorded stream of the video, shared by the tests that read it ------------------------------
@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("camera") / "colours.avi"
    return path, write_video(path)


@pytest.fixture(scope="module")
def stream(context, video):
    """The whole video published at its own rate, recorded until the camera reports the end of it."""
    path, _ = video

    def make(namespace):
        camera = OpenCVCamera(str(path), WIDTH, HEIGHT, VIDEO_FPS)
        return CameraNode(camera, "front", VIDEO_FPS, context=context, namespace=namespace)

    with spinning(context, make, "front") as (node, listener):
        wait_for(lambda: any(s.level == DiagnosticStatus.ERROR for s, _ in listener.statuses), timeout=10)
        return list(listener.images), list(listener.statuses)


def test_frames_are_rgb8_of_the_video_with_colours_intact(stream, video):
    images, _ = stream
    _, decoded = video
    assert len(images) >= 0.6 * VIDEO_FRAMES
    indices = []
    for msg, _ in images:
        assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", WIDTH, HEIGHT, 3 * WIDTH)
        assert msg.header.frame_id == "front"
        image = msg_to_image(msg)
        indices.append(match_frame(image, decoded))
        np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), frame_colour(indices[-1]), atol=6)
    assert indices == sorted(set(indices)), f"frames out of order or repeated: {indices}"


def test_stamps_are_capture_times(stream):
    images, _ = stream
    stamps = np.array([stamp_to_seconds(msg.header.stamp) for msg, _ in images])
    received = np.array([t for _, t in images])
    assert np.all(np.diff(stamps) > 0)
    assert np.all(stamps < received)
    assert np.all(received - stamps < 0.5), f"capture-to-receive latency up to {np.max(received - stamps):.3f} s"


def test_achieved_rate_is_near_the_requested_fps(stream):
    images, _ = stream
    stamps = [stamp_to_seconds(msg.header.stamp) for msg, _ in images]
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 0.6 * VIDEO_FPS < rate < 1.3 * VIDEO_FPS


def test_diagnostics_report_rate_then_error_when_the_frames_stop(stream):
    images, statuses = stream
    streaming = [s for s, _ in statuses if s.level != DiagnosticStatus.ERROR]
    assert streaming, "no diagnostics while streaming"
    ok = [s for s in streaming if s.level == DiagnosticStatus.OK]
    assert ok and any(0.5 * VIDEO_FPS < float(values(s)["fps_achieved"]) < 1.5 * VIDEO_FPS for s in ok)
    assert {"frames_dropped", "last_capture_age_s", "fps_requested"} <= values(ok[0]).keys()
    error = next(s for s, _ in statuses if s.level == DiagnosticStatus.ERROR)
    assert "no new frame" in error.message and "end of the video file" in error.message
    assert float(values(error)["last_capture_age_s"]) > 1.0
    assert int(values(error)["frames_published"]) == len(images)  # nothing was lost on loopback


def test_a_slow_publisher_drops_frames_instead_of_lagging(context, video):
    path, decoded = video
    slow_fps = 5.0

    def make(namespace):
        camera = OpenCVCamera(str(path), fps=VIDEO_FPS)
        return CameraNode(camera, "slow", slow_fps, context=context, namespace=namespace)

    with spinning(context, make, "slow") as (node, listener):
        assert wait_for(lambda: len(listener.images) >= 8, timeout=5)
        dropped = node.frames_dropped
    latencies = [received - stamp_to_seconds(msg.header.stamp) for msg, received in listener.images]
    assert max(latencies) < 1.0 / slow_fps + 0.15, f"latencies grew: {latencies}"
    indices = [match_frame(msg_to_image(msg), decoded) for msg, _ in listener.images]
    assert min(np.diff(indices)) >= 2 and dropped >= len(indices)


# --- opening --------------------------------------------------------------------------------------
def test_a_missing_device_raises_a_clear_error(tmp_path):
    missing = str(tmp_path / "video9")
    with pytest.raises(CameraError, match=rf"{missing}.*no such device.*ls /dev/video"):
        OpenCVCamera(missing).connect()
    with pytest.raises(CameraError, match=r"camera index 63 .*another index"):
        OpenCVCamera("63").connect()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: no permission error to provoke")
def test_an_unreadable_device_names_the_video_group(tmp_path):
    device = tmp_path / "video0"
    device.write_bytes(b"")
    device.chmod(0)
    with pytest.raises(CameraError, match="permission denied.*video"):
        OpenCVCamera(str(device)).connect()


def test_a_camera_node_on_a_missing_device_refuses_to_start(context, tmp_path):
    with pytest.raises(CameraError, match="no such device"):
        CameraNode(OpenCVCamera(str(tmp_path / "video9")), "gone", 10, context=context)


def test_a_size_the_device_does_not_deliver(video):
    path, _ = video
    with pytest.raises(CameraError, match=r"requested 320x240, the device delivers 160x120"):
        OpenCVCamera(str(path), 320, 240, strict_size=True).connect()
    camera = OpenCVCamera(str(path), 320, 240)
    camera.connect()
    try:
        rgb, _ = camera.read()
        assert rgb.shape == (HEIGHT, WIDTH, 3) and (camera.width, camera.height) == (WIDTH, HEIGHT)
        assert "requested 320x240" in camera.describe()
    finally:
        camera.disconnect()


# --- the twin ---------------------------------------------------------------------------------------
def test_the_twin_camera_follows_the_arm(context):
    from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend

    backend = WidowXTwinBackend()
    backend.connect()
    try:
        with spinning(context, lambda ns: twin_camera_node(backend, "front", 10, context=context,
                                                           namespace=ns), "front") as (_, listener):
            assert wait_for(lambda: len(listener.images) >= 3, timeout=10)
            at_rest = [msg_to_image(msg) for msg, _ in listener.images[-2:]]
            backend.set_torque(True)
            target = backend.read().position.copy()
            target[:2] += (0.6, 0.4)  # waist and shoulder
            backend.write(target)
            count = len(listener.images)
            assert wait_for(lambda: len(listener.images) >= count + 10, timeout=10)
            moved = msg_to_image(listener.images[-1][0])
            stamps = [stamp_to_seconds(msg.header.stamp) for msg, _ in listener.images]
    finally:
        backend.close()
    assert moved.shape == (*backend.env.image_size, 3) and moved.dtype == np.uint8
    still = np.abs(at_rest[1].astype(int) - at_rest[0]).mean()
    change = np.abs(moved.astype(int) - at_rest[1]).mean()
    assert still < 1.5 and change > 3.0, f"mean pixel change: at rest {still:.2f}, moved {change:.2f}"
    assert np.all(np.diff(stamps) > 0)


# --- messages ---------------------------------------------------------------------------------------
def test_image_messages_round_trip_exactly():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    stamp = 1_752_000_123.456789012
    msg = image_to_msg(rgb, stamp, "wrist")
    assert (msg.encoding, msg.header.frame_id, msg.step) == ("rgb8", "wrist", 21)
    np.testing.assert_array_equal(msg_to_image(msg), rgb)
    assert abs(stamp_to_seconds(msg.header.stamp) - stamp) < 1e-6
    assert msg.header.stamp.nanosec < 1_000_000_000


def test_padded_rows_and_bgr8_are_read_as_rgb():
    rgb = np.random.default_rng(1).integers(0, 256, (4, 3, 3), dtype=np.uint8)
    padded = np.zeros((4, 12), np.uint8)
    padded[:, :9] = rgb[..., ::-1].reshape(4, 9)
    msg = Image(height=4, width=3, encoding="bgr8", step=12, data=padded.tobytes())
    np.testing.assert_array_equal(msg_to_image(msg), rgb)


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        image_to_msg(np.zeros((4, 4), np.uint8), 0.0, "front")
    with pytest.raises(ValueError, match="expected rgb8 or bgr8, found 'mono16'"):
        msg_to_image(Image(height=1, width=1, encoding="mono16", step=2, data=b"\0\0"))


# --- the command line -------------------------------------------------------------------------------
def test_the_command_line_publishes_a_video_file(context, video):
    path, decoded = video
    name = f"cli_{os.getpid()}"
    command = [sys.executable, "-m", "robot_rl.drivers.camera", "--source", str(path), "--name", name,
               "--width", str(WIDTH), "--height", str(HEIGHT), "--fps", "20"]
    listener = Listener(context, "/", name)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        deadline = time.monotonic() + 15
        while len(listener.images) < 3 and time.monotonic() < deadline and process.poll() is None:
            executor.spin_once(timeout_sec=0.1)
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=10)[0]
        executor.shutdown()
        listener.destroy_node()
    assert len(listener.images) >= 3, output
    match_frame(msg_to_image(listener.images[-1][0]), decoded)
    assert f"camera {name}: {path} at {WIDTH}x{HEIGHT}" in output
