"""Every robot's embodiment spec, without MuJoCo: what the recorder, the driver, the policy and the learner
read to agree on keys, shapes and units before anything runs.

    spec = embodiment_spec("widowx", "reach", cameras=("front",))   # the twin task: state, task_state, front
    spec = embodiment_spec("widowx", cameras=("front",))            # the real robot: no task_state

Each robot has one pure module (``robot_rl.sim.<robot>.spec``) with its ``STATE`` key, ``ACTION_DIM``,
``ACTION_DESCRIPTION``, ``CONTROL_RATE_HZ``, ``CAMERAS`` and a ``TASKS`` table of :class:`TaskFacts`; the
twins build their spec here too, so there is one source.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from types import ModuleType

from robot_rl.datasets import CameraSpec, EmbodimentSpec, KeySpec

ROBOT_SPECS = {robot: f"robot_rl.sim.{robot}.spec" for robot in ("widowx", "franka", "rc_car")}
DEFAULT_IMAGE_SIZE = (128, 128)


@dataclass(frozen=True)
class TaskFacts:
    task_state: KeySpec    # object and goal positions: known in the twin only
    instruction: str       # the language instruction recorded with each episode
    max_steps: int         # the episode's step limit
    action_note: str = ""  # appended to the robot's action description


def robot_spec_module(robot: str) -> ModuleType:
    if robot not in ROBOT_SPECS:
        raise ValueError(f"robot={robot!r} is unknown: expected one of {sorted(ROBOT_SPECS)}")
    return importlib.import_module(ROBOT_SPECS[robot])


def task_facts(robot: str, task: str) -> TaskFacts:
    tasks = robot_spec_module(robot).TASKS
    if task not in tasks:
        raise ValueError(f"task={task!r} is unknown for robot {robot!r}: expected one of {sorted(tasks)}")
    return tasks[task]


def embodiment_spec(robot: str, task: str | None = None, cameras=(),
                    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE) -> EmbodimentSpec:
    """The spec of ``robot`` with ``cameras``; with ``task``, the twin task's (adds ``task_state``)."""
    facts = robot_spec_module(robot)
    unknown = [c for c in cameras if c not in facts.CAMERAS]
    if unknown:
        raise ValueError(f"robot {robot!r} has no camera {unknown}: expected some of {facts.CAMERAS}")
    state = {"state": facts.STATE}
    note = ""
    if task is not None:
        task_entry = task_facts(robot, task)
        state["task_state"], note = task_entry.task_state, task_entry.action_note
    height, width = image_size
    return EmbodimentSpec(
        name=robot,
        control_rate_hz=facts.CONTROL_RATE_HZ,
        action=KeySpec((facts.ACTION_DIM,), "float32", "normalized", -1.0, 1.0, facts.ACTION_DESCRIPTION + note),
        state=state,
        cameras={name: camera_spec(height, width) for name in cameras},
    )


def camera_spec(height: int, width: int, fovy_deg: float = 45.0) -> CameraSpec:
    """Pinhole intrinsics of a MuJoCo camera with vertical field of view ``fovy_deg`` (square pixels)."""
    focal = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
    return CameraSpec(height, width, fx=float(focal), fy=float(focal), cx=width / 2, cy=height / 2)
