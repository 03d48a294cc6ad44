"""The embodiment spec: one object that names every key a robot records, with its meaning.

Twin, driver, recorder, store and policy all read the same spec, so a mismatch fails at start-up.
It is stored as JSON in the store's group attributes; ``EmbodimentSpec.from_dict(spec.to_dict())``
round-trips exactly.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from robot_rl.datasets.errors import SpecMismatchError

# Per-step keys every episode has besides the observations, with their fixed layout.
STEP_KEYS = ("action", "reward", "terminated", "truncated", "timestamp")
# Per-step keys a store may have, named in the spec's ``optional_keys``; a frame without one gets its
# default (old stores, and writers that do not know the key, stay valid).
OPTIONAL_STEP_KEYS = {
    "intervention": ("bool", False, "the action came from a human taking over from the policy"),
}
IMAGE_CODECS = ("zstd", "lz4", "raw", "jpeg")  # all but jpeg are lossless


@dataclass(frozen=True)
class KeySpec:
    shape: tuple[int, ...]
    dtype: str
    units: str = ""
    low: Any = None
    high: Any = None
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)


@dataclass(frozen=True)
class CameraSpec:
    """An RGB camera: its frames are stored uint8 H x W x 3, one frame per chunk."""

    height: int
    width: int
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    codec: str = "zstd"
    jpeg_quality: int = 90

    def __post_init__(self):
        if self.codec not in IMAGE_CODECS:
            raise SpecMismatchError(
                f"camera codec {self.codec!r} is unknown: expected one of {IMAGE_CODECS}")

    @property
    def key_spec(self) -> KeySpec:
        return KeySpec((self.height, self.width, 3), "uint8", "rgb", 0, 255)


@dataclass(frozen=True)
class EmbodimentSpec:
    name: str
    control_rate_hz: float
    action: KeySpec
    state: Mapping[str, KeySpec] = field(default_factory=dict)
    cameras: Mapping[str, CameraSpec] = field(default_factory=dict)
    optional_keys: tuple[str, ...] = ()  # from OPTIONAL_STEP_KEYS, e.g. ("intervention",)

    def __post_init__(self):
        object.__setattr__(self, "optional_keys", tuple(self.optional_keys))
        unknown = [k for k in self.optional_keys if k not in OPTIONAL_STEP_KEYS]
        if unknown:
            raise SpecMismatchError(f"optional_keys: {unknown} are unknown; expected some of "
                                    f"{list(OPTIONAL_STEP_KEYS)}")
        for key in [*self.state, *self.cameras]:
            if key in STEP_KEYS or key in OPTIONAL_STEP_KEYS:
                raise SpecMismatchError(
                    f"observation key {key!r} clashes with a per-step key {STEP_KEYS + tuple(OPTIONAL_STEP_KEYS)}: "
                    "rename it")
        clash = set(self.state) & set(self.cameras)
        if clash:
            raise SpecMismatchError(f"keys {sorted(clash)} are both state and camera keys")

    @property
    def obs_keys(self) -> tuple[str, ...]:
        return (*self.state, *self.cameras)

    def without(self, *keys: str) -> EmbodimentSpec:
        """This spec without the observation ``keys`` (state or camera keys): ``spec.without("task_state")``
        is what hardware records, which has no twin task state."""
        unknown = [k for k in keys if k not in self.obs_keys]
        if unknown:
            raise SpecMismatchError(f"without: {unknown} are not observation keys of the {self.name!r} spec; "
                                    f"expected some of {list(self.obs_keys)}")
        return replace(self, state={k: v for k, v in self.state.items() if k not in keys},
                       cameras={k: v for k, v in self.cameras.items() if k not in keys})

    def with_optional(self, *keys: str) -> EmbodimentSpec:
        """This spec with the optional per-step ``keys`` too (``spec.with_optional("intervention")``)."""
        return replace(self, optional_keys=tuple(dict.fromkeys((*self.optional_keys, *keys))))

    def keys(self) -> dict[str, KeySpec]:
        """Every per-step key of ``data/`` with its spec, observations first."""
        return {
            **self.state,
            **{name: cam.key_spec for name, cam in self.cameras.items()},
            "action": self.action,
            "reward": KeySpec((), "float32"),
            "terminated": KeySpec((), "bool"),
            "truncated": KeySpec((), "bool"),
            "timestamp": KeySpec((), "float64", "s"),
            **{k: KeySpec((), OPTIONAL_STEP_KEYS[k][0], description=OPTIONAL_STEP_KEYS[k][2])
               for k in self.optional_keys},
        }

    def check_frame(self, frame: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Return the frame as arrays of the spec's dtypes, or refuse it naming the bad key."""
        expected = self.keys()
        frame = {**{k: OPTIONAL_STEP_KEYS[k][1] for k in self.optional_keys if k not in frame}, **frame}
        missing = [k for k in expected if k not in frame]
        unknown = [k for k in frame if k not in expected]
        if missing or unknown:
            raise SpecMismatchError(
                f"frame keys do not match the spec {self.name!r}: missing {missing}, unknown {unknown}")
        out = {}
        for key, spec in expected.items():
            value = np.asarray(frame[key])
            if value.shape != spec.shape:
                raise SpecMismatchError(
                    f"key {key!r}: expected shape {spec.shape}, found {value.shape}")
            if not _castable(value.dtype, np.dtype(spec.dtype)):
                raise SpecMismatchError(
                    f"key {key!r}: expected dtype {spec.dtype}, found {value.dtype} "
                    f"(shape {value.shape}); convert it before recording")
            out[key] = value.astype(spec.dtype, copy=False)
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "control_rate_hz": self.control_rate_hz,
            "action": _key_to_dict(self.action),
            "state": {k: _key_to_dict(v) for k, v in self.state.items()},
            "cameras": {k: asdict(v) for k, v in self.cameras.items()},
            **({"optional_keys": list(self.optional_keys)} if self.optional_keys else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> EmbodimentSpec:
        return cls(
            name=d["name"],
            control_rate_hz=float(d["control_rate_hz"]),
            action=KeySpec(**d["action"]),
            state={k: KeySpec(**v) for k, v in d["state"].items()},
            cameras={k: CameraSpec(**v) for k, v in d["cameras"].items()},
            optional_keys=tuple(d.get("optional_keys", ())),
        )


def _castable(found: np.dtype, expected: np.dtype) -> bool:
    if expected == np.bool_:
        return found == np.bool_
    if expected.kind in "ui" and found.kind == "f":
        return False
    return np.can_cast(found, expected, casting="same_kind")


def _key_to_dict(spec: KeySpec) -> dict:
    d = asdict(spec)
    d["shape"] = list(spec.shape)
    for bound in ("low", "high"):
        if isinstance(d[bound], np.ndarray):
            d[bound] = d[bound].tolist()
    return d
