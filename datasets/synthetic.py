"""Synthetic episodes for demos, benchmarks and tests: smooth motion, textured camera frames that
compress like real ones (neither constant nor noise), a reward that rises toward the episode's end."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from robot_rl.datasets.spec import CameraSpec, EmbodimentSpec, KeySpec


def synthetic_spec(*, cameras: tuple[str, ...] = ("front", "wrist"), height: int = 128, width: int = 128,
                   codec: str = "zstd", state_dim: int = 14, action_dim: int = 7,
                   control_rate_hz: float = 30.0) -> EmbodimentSpec:
    return EmbodimentSpec(
        name="synthetic",
        control_rate_hz=control_rate_hz,
        action=KeySpec((action_dim,), "float32", "normalized", -1.0, 1.0),
        state={"state": KeySpec((state_dim,), "float32", "rad", -np.pi, np.pi)},
        cameras={c: CameraSpec(height, width, fx=width, fy=width, cx=width / 2, cy=height / 2, codec=codec)
                 for c in cameras},
    )


class SyntheticEpisodes:
    def __init__(self, spec: EmbodimentSpec, seed: int = 0):
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self._textures = {name: _texture(self.rng, cam.height, cam.width) for name, cam in spec.cameras.items()}

    def frames(self, length: int, terminated: bool = False) -> Iterator[dict[str, np.ndarray]]:
        state_dim = self.spec.state["state"].shape[0]
        action_dim = self.spec.action.shape[0]
        phase = self.rng.uniform(0, 2 * np.pi, state_dim)
        t0 = self.rng.uniform(0, 1e6)
        for t in range(length):
            shift = int(self.rng.integers(0, 8))
            yield {
                "state": np.sin(phase + 0.05 * t).astype(np.float32),
                **{name: np.roll(tex, shift * (t + 1), axis=1) for name, tex in self._textures.items()},
                "action": np.tanh(self.rng.normal(0, 0.5, action_dim)).astype(np.float32),
                "reward": np.float32(t / max(length - 1, 1)),
                "terminated": terminated and t == length - 1,
                "truncated": (not terminated) and t == length - 1,
                "timestamp": t0 + t / self.spec.control_rate_hz,
            }


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth shading, a few flat objects and +-2 levels of sensor noise: zstd compresses it about
    as well as a real camera frame of a table-top scene (roughly 2:1)."""
    y, x = np.mgrid[:height, :width] / max(height, width)
    image = np.stack([160 + 60 * x, 140 + 50 * y, 120 + 40 * (x + y) / 2], axis=-1)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.15)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r**2] = rng.uniform(0, 255, 3)
    return (image + rng.integers(-2, 3, image.shape)).clip(0, 255).astype(np.uint8)
