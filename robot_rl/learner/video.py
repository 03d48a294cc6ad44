"""MP4 files of rollouts (H.264 through the ffmpeg that ``imageio-ffmpeg`` ships)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: float) -> Path:
    import imageio_ffmpeg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    # yuv420p needs even sizes; macro_block_size=1 keeps ours as they are
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=max(fps, 1.0), codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=1, quality=7)
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame[..., :3], dtype=np.uint8))
    writer.close()
    return path
