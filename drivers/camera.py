"""Cameras with LeRobot's small surface: ``connect()``, ``read() -> (rgb, capture_time)``, ``disconnect()``.

    camera = OpenCVCamera("/dev/video0", width=640, height=480, fps=30)
    camera.connect()
    rgb, stamp = camera.read()     # uint8 RGB, H x W x 3; stamp: time.time() when the frame was grabbed
    camera.disconnect()

- ``OpenCVCamera``: anything ``cv2.VideoCapture`` opens: a device index, a device path (``/dev/video0``)
  or a video file. A video file plays at the requested fps (a device paces itself; a file would otherwise
  be read as fast as it decodes) and ends like an unplugged camera: ``read()`` raises ``CameraError``.
- ``TwinCamera``: a camera rendered from a MuJoCo twin; ``twin_renderer(backend, "front")`` builds its
  render callable from the WidowX twin backend.
- ``LatestFrameReader``: reads a camera in a thread of its own and keeps only the newest frame, so a slow
  consumer never lags behind the device (frames it did not take are counted as dropped).

Resolution: the requested size is asked of the device, which may pick another one. The camera then
delivers the frames the device gives, unresized (a resize would invent pixels and change the intrinsics),
and reports the actual size in ``describe()``; with ``strict_size=True`` a different size refuses at
``connect()`` instead.

The ROS 2 node publishing these frames is ``robot_rl.drivers.camera_node``; this module does not need ROS,
except for ``main()``, the command line:

    python -m robot_rl.drivers.camera --source /dev/video0 --name front --width 640 --height 480 --fps 30
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


class CameraError(RuntimeError):
    """A camera that cannot be opened, or stopped delivering frames."""


class Camera(Protocol):
    def connect(self) -> None: ...

    def read(self) -> tuple[np.ndarray, float]: ...

    def disconnect(self) -> None: ...

    def describe(self) -> str: ...


def parse_source(source: str | int) -> str | int:
    """A device index given as text ("0") becomes an int, as cv2.VideoCapture wants it."""
    if isinstance(source, str) and source.strip().isdigit():
        return int(source)
    return source


class OpenCVCamera:
    def __init__(self, source: str | int, width: int | None = None, height: int | None = None,
                 fps: float | None = None, strict_size: bool = False):
        self.source = parse_source(source)
        self.requested_size = (width, height)
        self.fps = fps
        self.strict_size = strict_size
        self.width: int | None = None
        self.height: int | None = None
        self._capture: cv2.VideoCapture | None = None
        self._first_frame: tuple[np.ndarray, float] | None = None
        self._is_file = isinstance(self.source, str) and os.path.isfile(self.source)
        self._next_file_frame_time: float | None = None

    def connect(self) -> None:
        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            raise CameraError(_open_failure_message(self.source))
        self._capture = capture
        self._request_settings()
        try:
            self._first_frame = self._grab()
        except CameraError as err:
            self.disconnect()
            raise CameraError(f"camera {self.source!r} opened but delivered no frame ({err}): another "
                              "program may hold it, or it does not support the requested format") from err
        self.height, self.width = self._first_frame[0].shape[:2]
        self._check_size()

    def read(self) -> tuple[np.ndarray, float]:
        if self._capture is None:
            raise CameraError(f"camera {self.source!r} is not connected: call connect() first")
        if self._first_frame is not None:  # the frame connect() took to learn the real size
            frame, self._first_frame = self._first_frame, None
            return frame
        return self._grab()

    def disconnect(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def describe(self) -> str:
        asked_width, asked_height = self.requested_size
        text = f"{self.source} at {self.width}x{self.height}"
        if asked_width and asked_height and (asked_width, asked_height) != (self.width, self.height):
            text += f" (requested {asked_width}x{asked_height}; publishing the device's size)"
        return text

    def _request_settings(self) -> None:
        width, height = self.requested_size
        if width and height and not self._is_file:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if self.fps and not self._is_file:
            self._capture.set(cv2.CAP_PROP_FPS, self.fps)
        # The driver's queue otherwise holds several old frames, and grab() would return a stale one.
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def _check_size(self) -> None:
        width, height = self.requested_size
        mismatch = width and height and (width, height) != (self.width, self.height)
        if mismatch and self.strict_size:
            found = (self.width, self.height)
            self.disconnect()
            raise CameraError(f"camera {self.source!r}: requested {width}x{height}, the device delivers "
                              f"{found[0]}x{found[1]}: request a size it supports (v4l2-ctl --list-formats-ext) "
                              "or leave strict_size off to publish the device's size")

    def _grab(self) -> tuple[np.ndarray, float]:
        self._pace_file()
        if not self._capture.grab():
            raise CameraError(f"camera {self.source!r}: no frame (device unplugged, or end of the video file)")
        stamp = time.time()  # the grab is the capture; retrieve() only decodes
        ok, bgr = self._capture.retrieve()
        if not ok or bgr is None:
            raise CameraError(f"camera {self.source!r}: a grabbed frame could not be decoded")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), stamp

    def _pace_file(self) -> None:
        if not (self._is_file and self.fps):
            return
        period = 1.0 / self.fps
        now = time.monotonic()
        if self._next_file_frame_time is None or self._next_file_frame_time < now - period:
            self._next_file_frame_time = now  # the first frame, or fell behind: restart the schedule
        elif self._next_file_frame_time > now:
            time.sleep(self._next_file_frame_time - now)
        self._next_file_frame_time += period


def _open_failure_message(source: str | int) -> str:
    if isinstance(source, int):
        return (f"camera index {source} could not be opened: no camera at that index, or it is in use. "
                "List cameras with `ls /dev/video*` (or `v4l2-ctl --list-devices`) and pass another index "
                "or a device path")
    if not os.path.exists(source):
        return (f"camera {source!r} could not be opened: no such device or file. Check the camera is "
                "plugged in and the path is right (`ls /dev/video*`); in a container, pass the device in "
                "(docker run --device /dev/video0)")
    if not os.access(source, os.R_OK):
        return (f"camera {source!r} could not be opened: permission denied. Add the user to the `video` "
                "group (sudo usermod -aG video $USER, then log in again)")
    return (f"camera {source!r} could not be opened: it exists but OpenCV cannot read it (not a capture "
            "device, in use by another program, or an unsupported video format)")


class TwinCamera:
    """A camera rendered from a simulation: ``render()`` returns uint8 RGB, stamped with ``clock()`` just
    before the render (when the scene is snapshotted). The render callable may need to stay on one thread
    (MuJoCo's GL context): call ``read()`` from one thread only."""

    def __init__(self, render: Callable[[], np.ndarray], clock: Callable[[], float] = time.time,
                 name: str = "twin"):
        self.render = render
        self.clock = clock
        self.name = name

    def connect(self) -> None:
        """Nothing to open: the renderer is made on the first read(), on the thread that renders."""

    def read(self) -> tuple[np.ndarray, float]:
        stamp = self.clock()
        return self.render(), stamp

    def disconnect(self) -> None:
        close = getattr(self.render, "close", None)
        if close is not None:
            close()

    def describe(self) -> str:
        return f"twin camera {self.name}"


class TwinRenderer:
    """Renders one camera of a MuJoCo twin backend (anything with ``.env``, a TwinEnv, and optionally a
    ``lock`` that its physics thread holds while stepping).

    It owns its mujoco.Renderer, made on the first call so the GL context belongs to the thread that
    renders, and separate from the env's own renderer. The backend's lock is held only while the scene is
    copied out of the physics state (``update_scene``), not while rasterizing: physics never steps
    mid-copy, and is not held up for the length of a render.
    """

    def __init__(self, backend, camera: str, image_size: tuple[int, int] | None = None):
        env = backend.env
        if camera not in env.camera_names:
            raise ValueError(f"camera {camera!r}: the twin has cameras {env.camera_names}")
        self.backend = backend
        self.camera = camera
        self.image_size = tuple(image_size or env.image_size)  # (height, width)
        self._lock = getattr(backend, "lock", None) or threading.Lock()
        self._renderer = None
        self._render_thread: int | None = None

    def __call__(self) -> np.ndarray:
        if self._renderer is None:
            self._make_renderer()
        if threading.get_ident() != self._render_thread:
            raise CameraError(f"twin camera {self.camera!r}: rendered from another thread than the one that "
                              "made its GL context: spin the camera node with a SingleThreadedExecutor")
        with self._lock:
            self._renderer.update_scene(self.backend.env.data, self.camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _make_renderer(self) -> None:
        import mujoco
        from mujoco import gl_context

        # MuJoCo picks its GL backend when first imported; GLFW without a display aborts the process.
        if gl_context.GLContext.__module__ == "mujoco.glfw" and not os.environ.get("DISPLAY"):
            raise CameraError("MuJoCo was imported before robot_rl.sim chose MUJOCO_GL=egl and there is no "
                              "display: set MUJOCO_GL=egl in the environment, or import robot_rl.sim first")
        height, width = self.image_size
        self._renderer = mujoco.Renderer(self.backend.env.model, height, width)
        self._render_thread = threading.get_ident()


def twin_renderer(backend, camera: str, image_size: tuple[int, int] | None = None) -> TwinRenderer:
    """The render callable of a twin backend's camera, at the twin's image size unless given."""
    return TwinRenderer(backend, camera, image_size)


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray
    stamp: float  # capture time, time.time() seconds
    sequence: int  # counts frames read from the camera, from 1


class LatestFrameReader:
    """Reads a camera in a background thread and keeps the newest frame only.

    ``take()`` returns the newest frame not taken yet (None if there is none); frames overwritten before
    anyone took them count in ``dropped``. ``last_error`` holds why the latest read failed (cleared by
    the next good frame); the thread keeps retrying, every ``retry_period`` seconds.
    """

    def __init__(self, camera: Camera, retry_period: float = 0.05):
        self.camera = camera
        self.retry_period = retry_period
        self.dropped = 0
        self.last_error: str | None = None
        self._latest: Frame | None = None
        self._taken_sequence = 0
        self._sequence = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def take(self) -> Frame | None:
        with self._lock:
            frame = self._latest
            if frame is None or frame.sequence == self._taken_sequence:
                return None
            self._taken_sequence = frame.sequence
            return frame

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rgb, stamp = self.camera.read()
            except Exception as err:  # any failure of the device is reported, never fatal
                self.last_error = str(err) if isinstance(err, CameraError) else f"{type(err).__name__}: {err}"
                self._stop.wait(self.retry_period)
                continue
            self._store(rgb, stamp)

    def _store(self, rgb: np.ndarray, stamp: float) -> None:
        with self._lock:
            self._sequence += 1
            if self._latest is not None and self._latest.sequence != self._taken_sequence:
                self.dropped += 1
            self._latest = Frame(rgb, stamp, self._sequence)
            self.last_error = None


def main(argv: list[str] | None = None) -> None:
    from robot_rl.drivers.network import apply_dds_environment
    apply_dds_environment()  # before rclpy starts DDS: sockets on 127.0.0.1 unless opted out
    from robot_rl.drivers.camera_node import main as node_main

    node_main(argv)


if __name__ == "__main__":
    main()
