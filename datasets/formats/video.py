"""Camera frames in and out of MP4 files through PyAV (FFmpeg), as LeRobot stores them: one video
stream per file, frame i at pts i (time base 1/fps), a keyframe every 2 frames for fast seeking."""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction

import numpy as np

from robot_rl.datasets.errors import StoreError
from robot_rl.datasets.formats.common import require

# name -> (FFmpeg encoder, pixel format, options, codec name LeRobot's info.json gives)
VIDEO_CODECS = {
    "av1": ("libsvtav1", "yuv420p", {"crf": "30", "g": "2", "preset": "12"}, "av1"),  # LeRobot's default
    "h264": ("libx264", "yuv420p", {"crf": "18", "g": "2", "preset": "veryfast"}, "h264"),
    "lossless": ("libx264rgb", "rgb24", {"crf": "0", "g": "2", "preset": "veryfast"}, "h264"),
}


def fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


@contextlib.contextmanager
def caller_scheduling_kept():
    """Restores the calling thread's scheduling policy after the block.

    SVT-AV1, run as root, makes the thread that first encodes SCHED_FIFO at priority 99 and leaves it so.
    A real-time Python thread that later busy-waits (dynamixel-sdk polls its serial port) then starves the
    kernel's tty workers on its core, and a serial reply arrives only once the poll gives up."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)


class VideoWriter:
    """Appends uint8 H x W x 3 RGB frames to a new MP4 file."""

    def __init__(self, path, fps: float, height: int, width: int, codec: str = "av1"):
        av = require("av")
        if codec not in VIDEO_CODECS:
            raise StoreError(f"video codec {codec!r} is unknown: expected one of {sorted(VIDEO_CODECS)}")
        encoder, self.pix_fmt, options, self.codec_name = VIDEO_CODECS[codec]
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration to stderr otherwise
        self._av = av
        self.container = av.open(os.fspath(path), "w")
        self.stream = self.container.add_stream(encoder, rate=fps_fraction(fps))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, self.pix_fmt
        self.stream.time_base = 1 / fps_fraction(fps)
        self.stream.options = dict(options)
        self.frames = 0

    def add(self, rgb: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        self.frames += 1
        with caller_scheduling_kept():
            self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        with caller_scheduling_kept():
            self.container.mux(self.stream.encode())
            self.container.close()


class VideoReader:
    """Frames of one MP4 file by frame index (pts x fps), read forward; going back reopens the file."""

    def __init__(self, path, fps: float, what: str):
        self.path, self.fps, self.what = os.fspath(path), fps_fraction(fps), what
        self._av = require("av")
        self._open()

    def _open(self) -> None:
        try:
            self.container = self._av.open(self.path)
            stream = self.container.streams.video[0]
        except (self._av.FFmpegError, IndexError) as e:
            raise StoreError(f"{self.path}: not a readable video ({e}); is the file truncated? fetch it again") from e
        stream.thread_type = "AUTO"
        self._time_base = stream.time_base
        self._frames = self.container.decode(stream)
        self.next_index = 0

    def read(self, first: int, count: int) -> np.ndarray:
        """Frames first .. first + count - 1 as (count, H, W, 3) uint8."""
        if first < self.next_index:
            self.container.close()
            self._open()
        out = []
        while len(out) < count:
            try:
                frame = next(self._frames)
            except (StopIteration, self._av.FFmpegError) as e:
                raise StoreError(
                    f"{self.path}: the video of {self.what} ends at frame {self.next_index}, frames up to "
                    f"{first + count - 1} are needed; the file is truncated or damaged: fetch it again") from e
            index = round(frame.pts * self._time_base * self.fps) if frame.pts is not None else self.next_index
            self.next_index = index + 1
            if index >= first:
                out.append(frame.to_ndarray(format="rgb24"))
        return np.stack(out)

    def close(self) -> None:
        self.container.close()
