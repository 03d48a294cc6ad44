"""The ROS 2 camera node: one camera (``robot_rl.drivers.camera``) published as ``sensor_msgs/Image``.

    node = CameraNode(OpenCVCamera("/dev/video0", 640, 480, 30), name="front", fps=30)
    node = twin_camera_node(widowx_twin_backend, "front", fps=10)   # the same camera, from the twin
    rclpy.spin(node)            # a SingleThreadedExecutor (the twin renders in the timer callback)
    node.destroy_node()         # stops the capture thread and closes the camera

| name                  | kind    | type                            | rate        | QoS                                 |
|-----------------------|---------|---------------------------------|-------------|-------------------------------------|
| `<name>/image_raw`    | publish | sensor_msgs/Image, rgb8         | up to `fps` | best effort, volatile, last 1       |
| `diagnostics`         | publish | diagnostic_msgs/DiagnosticArray | 1 Hz        | reliable, volatile, last 10         |

- ``header.stamp`` is the capture time (wall clock, the moment the frame was grabbed or the twin's scene
  was snapshotted), never the publish time; ``header.frame_id`` is the camera name. Subscribers must be
  best effort (a reliable subscription does not match).
- A timer at ``fps`` publishes the newest frame not yet published, and nothing when there is none (a frame
  is never published twice, so stamps strictly increase). A device camera is read by its own capture
  thread that keeps only the latest frame, so a slow publisher skips frames (counted as dropped) rather
  than falling behind the device; the cost is up to one timer period of extra latency. A twin camera
  renders in the timer callback itself: MuJoCo's GL context belongs to the thread that made it.
- ``diagnostics``: level OK, WARN when the achieved rate is under half the requested one, ERROR when no
  new frame came for more than ``stall_timeout`` (1 s), with the camera's last error as the reason.
  Values: fps_requested, fps_achieved, frames_published, frames_dropped, last_capture_age_s, width,
  height.
- Parameters ``camera_name`` and ``fps`` (defaults: the constructor's arguments).
"""
from __future__ import annotations

import argparse
import array
import math
import sys
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import Image

from robot_rl.drivers.camera import (
    Camera,
    CameraError,
    Frame,
    LatestFrameReader,
    OpenCVCamera,
    TwinCamera,
    twin_renderer,
)
from robot_rl.drivers.spinning import spin_until

IMAGE_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)


def seconds_to_stamp(seconds: float) -> Time:
    whole = math.floor(seconds)
    nanoseconds = round((seconds - whole) * 1e9)
    if nanoseconds >= 1_000_000_000:
        whole, nanoseconds = whole + 1, nanoseconds - 1_000_000_000
    return Time(sec=int(whole), nanosec=int(nanoseconds))


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def image_to_msg(rgb: np.ndarray, stamp: float, frame_id: str) -> Image:
    """A uint8 RGB H x W x 3 image as an rgb8 ``sensor_msgs/Image`` (no cv_bridge needed)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image: expected uint8 H x W x 3 RGB, found {rgb.dtype} of shape {rgb.shape}")
    height, width = rgb.shape[:2]
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=3 * width)
    msg.header.stamp = seconds_to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.data = array.array("B", np.ascontiguousarray(rgb).tobytes())  # array.array: rclpy's fast path
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    """The uint8 RGB H x W x 3 image of an rgb8 or bgr8 ``sensor_msgs/Image`` (rows may be padded)."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"image encoding: expected rgb8 or bgr8, found {msg.encoding!r}: "
                         "publish colour images as rgb8")
    if msg.step < 3 * msg.width or len(msg.data) < msg.step * msg.height:
        raise ValueError(f"image {msg.width}x{msg.height}: step {msg.step} and {len(msg.data)} bytes of data "
                         "do not hold 3 bytes per pixel")
    rows = np.frombuffer(msg.data, np.uint8, count=msg.step * msg.height).reshape(msg.height, msg.step)
    image = rows[:, :3 * msg.width].reshape(msg.height, msg.width, 3)
    return np.array(image[..., ::-1] if msg.encoding == "bgr8" else image)


class CameraNode(Node):
    def __init__(self, camera: Camera, name: str, fps: float, *, threaded: bool | None = None,
                 stall_timeout: float = 1.0, node_name: str | None = None, **node_kwargs):
        super().__init__(node_name or f"{name}_camera", **node_kwargs)
        self.camera_name = self.declare_parameter("camera_name", name).value
        self.fps = float(self.declare_parameter("fps", float(fps)).value)
        if self.fps <= 0:
            raise ValueError(f"fps: expected a positive rate, found {self.fps}")
        self.stall_timeout = stall_timeout
        self.camera = camera
        try:
            self.camera.connect()
        except Exception:
            super().destroy_node()
            raise
        self._reader = LatestFrameReader(camera) if _wants_thread(camera, threaded) else None
        self._reset_statistics()
        self.image_pub = self.create_publisher(Image, f"{self.camera_name}/image_raw", IMAGE_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS)
        if self._reader is not None:
            self._reader.start()
        self.create_timer(1.0 / self.fps, self._on_frame_tick)
        self.create_timer(1.0, self.publish_diagnostics)
        self.get_logger().info(f"camera {self.camera_name}: {camera.describe()}; publishing "
                               f"{self.image_pub.topic_name} at up to {self.fps:g} fps")

    def destroy_node(self):
        if self._reader is not None:
            self._reader.stop()
        self.camera.disconnect()
        return super().destroy_node()

    # --- frames -------------------------------------------------------------------------------
    def _on_frame_tick(self) -> None:
        frame = self._next_frame()
        if frame is None:
            return
        self.image_pub.publish(image_to_msg(frame.rgb, frame.stamp, self.camera_name))
        self.frames_published += 1
        self._window_frames += 1
        self.last_stamp = frame.stamp
        self.last_size = frame.rgb.shape[:2]

    def _next_frame(self) -> Frame | None:
        if self._reader is not None:
            return self._reader.take()
        try:
            rgb, stamp = self.camera.read()
        except Exception as err:  # a failing camera is reported in diagnostics, not raised into the executor
            self._read_error = str(err)
            return None
        self._read_error = None
        return Frame(rgb, stamp, self.frames_published + 1)

    # --- diagnostics --------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self._status()]
        self.diagnostics_pub.publish(msg)
        self._window_frames, self._window_start = 0, time.monotonic()

    def _status(self) -> DiagnosticStatus:
        now = time.time()
        achieved = self._window_frames / max(time.monotonic() - self._window_start, 1e-6)
        age = now - (self.last_stamp if self.last_stamp is not None else self._started)
        if age > self.stall_timeout:
            reason = self._last_error() or "the camera returned no frame"
            level, message = DiagnosticStatus.ERROR, f"no new frame for {age:.1f} s: {reason}"
        elif achieved < 0.5 * self.fps:
            level, message = DiagnosticStatus.WARN, f"{achieved:.1f} fps, requested {self.fps:g}"
        else:
            level, message = DiagnosticStatus.OK, "streaming"
        height, width = self.last_size
        values = {"fps_requested": self.fps, "fps_achieved": round(achieved, 2),
                  "frames_published": self.frames_published, "frames_dropped": self.frames_dropped,
                  "last_capture_age_s": round(age, 3), "width": width, "height": height}
        return DiagnosticStatus(level=level, name=f"{self.get_name()}: camera {self.camera_name}",
                                message=message, hardware_id=self.camera.describe(),
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    @property
    def frames_dropped(self) -> int:
        return self._reader.dropped if self._reader is not None else 0

    def _last_error(self) -> str | None:
        return self._reader.last_error if self._reader is not None else self._read_error

    def _reset_statistics(self) -> None:
        self.frames_published = 0
        self.last_stamp: float | None = None
        self.last_size: tuple[int, int] = (0, 0)
        self._read_error: str | None = None
        self._started = time.time()
        self._window_frames, self._window_start = 0, time.monotonic()


def _wants_thread(camera: Camera, threaded: bool | None) -> bool:
    # A twin renders on the executor's thread (its GL context); a device is read by a capture thread.
    return not isinstance(camera, TwinCamera) if threaded is None else threaded


def twin_camera_node(backend, camera: str, fps: float, **kwargs) -> CameraNode:
    """A camera node rendering ``camera`` of a twin backend (in the backend's process: the twin's state
    is not shared across processes). Spin it with a SingleThreadedExecutor."""
    return CameraNode(TwinCamera(twin_renderer(backend, camera), name=camera), camera, fps, **kwargs)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.drivers.camera",
                                     description="Publish an OpenCV camera as sensor_msgs/Image (rgb8).")
    parser.add_argument("--source", required=True, help="device index (0), device path (/dev/video0) or video file")
    parser.add_argument("--name", default="camera", help="camera name: topic <name>/image_raw, frame_id <name>")
    parser.add_argument("--width", type=int, help="requested width (the device may deliver another)")
    parser.add_argument("--height", type=int, help="requested height")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--strict-size", action="store_true",
                        help="refuse to start when the device does not deliver the requested size")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    from robot_rl.drivers.network import apply_dds_environment
    apply_dds_environment()  # before rclpy starts DDS: sockets on 127.0.0.1 unless opted out
    args = parse_args(remove_ros_args(["camera", *argv])[1:])
    camera = OpenCVCamera(args.source, args.width, args.height, args.fps, strict_size=args.strict_size)
    rclpy.init(args=["camera", *argv])
    try:
        _spin(CameraNode(camera, args.name, args.fps))
    except CameraError as err:
        sys.exit(f"error: {err}")
    finally:
        rclpy.try_shutdown()


def _spin(node: CameraNode) -> None:
    try:
        spin_until([node])
    finally:
        node.destroy_node()
