"""The embodiment spec's helpers: ``spec.without(...)`` drops observation keys and refuses unknown ones."""
from __future__ import annotations

import pytest

from robot_rl.datasets import EmbodimentSpec
from robot_rl.datasets.errors import SpecMismatchError
from robot_rl.datasets.spec import CameraSpec, KeySpec


def twin_like_spec() -> EmbodimentSpec:
    return EmbodimentSpec("arm", 5.0, KeySpec((7,), "float32"),
                          state={"state": KeySpec((6,), "float32"), "task_state": KeySpec((3,), "float32")},
                          cameras={"front": CameraSpec(8, 8), "wrist": CameraSpec(4, 4)})


def test_without_drops_state_and_camera_keys_and_keeps_the_rest():
    spec = twin_like_spec()
    hardware = spec.without("task_state")
    assert hardware.obs_keys == ("state", "front", "wrist")
    assert hardware.action == spec.action and hardware.control_rate_hz == 5.0 and hardware.name == "arm"
    assert spec.obs_keys == ("state", "task_state", "front", "wrist"), "the spec itself is unchanged"
    assert spec.without("task_state", "wrist").obs_keys == ("state", "front")
    assert EmbodimentSpec.from_dict(hardware.to_dict()) == hardware
    assert spec.without() == spec


def test_without_refuses_an_unknown_key_naming_the_known_ones():
    with pytest.raises(SpecMismatchError) as refused:
        twin_like_spec().without("task_state", "depth")
    message = str(refused.value)
    assert "['depth']" in message and "'arm'" in message
    assert "['state', 'task_state', 'front', 'wrist']" in message
    with pytest.raises(SpecMismatchError, match="'action'"):
        twin_like_spec().without("action")  # a per-step key, not an observation key
