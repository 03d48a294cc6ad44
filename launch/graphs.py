"""The node graphs of the robot jobs, as plain data: which processes run, each ``python -m <module> <args>``.

``robot-rl bringup <graph> key=value ...`` starts them as plain processes (robot_rl.launch.supervisor);
``ros2 launch robot_rl <graph>.launch.py key:=value ...`` starts the same list under a ROS 2 install.

    teleop_collect   the robot, its cameras, a teleop device and the recorder: episodes into ``out``
    deploy           the robot, its cameras and the policy node driving it from ``checkpoint``
    finetune_actor   the actor side of ``robot-rl finetune``: the robot acting with the newest checkpoint
                     of the run folder ``checkpoint``, and the recorder appending each episode to ``out``

The robot comes from the robot layer's registry (robot_rl.drivers.robot): its robot process, its backends
and its default port; every robot process takes the same options, so a new robot needs no change here.
With ``backend=twin`` the MuJoCo twin lives in the robot process, and so do the nodes that read its
state (cameras, task state, the scripted operator): see robot_rl.drivers.widowx.node. On hardware every
camera and the teleop device is a process of its own.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from robot_rl.drivers.robot import ROBOTS, default_task, robot_definition

TELEOP_DEVICES = ("keyboard", "spacemouse", "gamepad", "scripted", "none")  # none: the recorder's services only


@dataclass(frozen=True)
class Process:
    name: str
    module: str                    # run as `python -m module *args`
    args: tuple[str, ...] = ()
    terminal: bool = False         # reads the terminal (the keyboard teleop): keeps stdin
    completes_job: bool = False    # its exit with status 0 ends the job, and the others are stopped

    def command(self, python: str = sys.executable) -> list[str]:
        return [python, "-m", self.module, *self.args]


@dataclass(frozen=True)
class Options:
    """What a graph is built from: the `robot-rl bringup` config (robot_rl/configs/bringup.yaml) or the
    launch file's arguments."""
    robot: str = "widowx"
    backend: str = "twin"
    task: str | None = None        # None: the robot's default task (robot_rl.drivers.robot.default_task)
    cameras: tuple[str, ...] = ("front",)
    camera_devices: dict[str, str] = field(default_factory=dict)  # hardware: camera name -> device
    camera_fps: float = 10.0
    port: str | None = None        # hardware: the robot's serial port or address (default: the robot's own)
    rate: float | None = None      # the control rate, Hz (None: the robot's own, its spec's CONTROL_RATE_HZ)
    teleop: str = "keyboard"
    out: str | None = None         # teleop_collect: the store episodes go into
    episodes: int = 0              # teleop_collect: stop after this many kept episodes (0: until Ctrl-C)
    instruction: str | None = None
    checkpoint: str | None = None  # deploy: a checkpoint, checkpoints/ or run folder
    steps: int | None = None       # deploy on the twin: actions to send (default: the task's step limit)
    execute_steps: int | None = None  # deploy, action chunks: run k <= h actions per chunk (default h)
    temporal_ensemble: bool = False   # deploy, action chunks: blend overlapping chunks every tick (ACT)
    report: str | None = None      # deploy: the policy node writes its JSON report here when it stops
    seed: int = 0
    dynamics: str | None = None    # the twin's robot_rl.sim.dynamics preset (finetune: the "real" stand-in)
    takeover: bool = False         # finetune_actor: the operator's device takes over motion while held
    takeover_budget: int | None = None  # finetune_actor, teleop=scripted on the twin: the expert's most ticks
    reward_classifier: str | None = None  # finetune_actor on hardware: a learned reward (robot-rl train-reward)

    def __post_init__(self):
        _check_choice("robot", self.robot, tuple(ROBOTS))
        robot_definition(self.robot).check_backend(self.backend)
        _check_choice("teleop", self.teleop, TELEOP_DEVICES)
        if self.task is None:
            object.__setattr__(self, "task", default_task(self.robot))
        if self.rate is None:
            from robot_rl.sim.specs import robot_spec_module

            object.__setattr__(self, "rate", float(robot_spec_module(self.robot).CONTROL_RATE_HZ))
        if not self.rate > 0:
            raise ValueError(f"rate={self.rate}: expected a positive control rate in Hz (the robot's own by default)")
        if self.episodes < 0:
            raise ValueError(f"episodes={self.episodes}: expected 0 (until Ctrl-C) or a positive count")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key}={value!r} is unknown: expected one of {', '.join(choices)}")


def robot_process(o: Options, *extra: str) -> Process:
    definition = robot_definition(o.robot)
    args = ["--backend", o.backend, "--command-rate", str(o.rate), "--enable-torque", *extra]
    if o.backend == "twin":
        args += ["--task", o.task, "--seed", str(o.seed), "--cameras", ",".join(o.cameras),
                 "--camera-fps", str(o.camera_fps), *(["--dynamics", o.dynamics] if o.dynamics else [])]
    else:
        args += ["--port", o.port or definition.default_port]
    return Process(o.robot, definition.process, tuple(args))


def camera_processes(o: Options) -> list[Process]:
    """Hardware cameras, one process each; twin cameras render inside the robot process."""
    if o.backend == "twin":
        return []
    missing = [c for c in o.cameras if c not in o.camera_devices]
    if missing:
        raise ValueError(f"cameras {missing} have no device: give camera_devices.{missing[0]}=/dev/video0 "
                         "(or an index), or drop them from cameras")
    return [Process(f"camera_{c}", "robot_rl.drivers.camera_node",
                    ("--source", str(o.camera_devices[c]), "--name", c, "--fps", str(o.camera_fps)))
            for c in o.cameras]


def teleop_collect(o: Options) -> list[Process]:
    if not o.out:
        raise ValueError("teleop_collect needs out=<store path> (a new or existing store for this robot)")
    devices = robot_definition(o.robot).teleop_devices
    if devices is not None and o.teleop not in devices:
        raise ValueError(f"teleop={o.teleop} cannot drive robot={o.robot} yet: expected one of {', '.join(devices)}")
    scripted = o.teleop == "scripted"
    if scripted and o.backend != "twin":
        raise ValueError("teleop=scripted plays the twin task's expert, which reads the twin's state: use "
                         "backend=twin, or a real device (keyboard, spacemouse, gamepad) on hardware")
    recorder = ["--robot", o.robot, "--task", o.task, "--out", str(o.out), "--cameras", ",".join(o.cameras),
                "--rate", str(o.rate), "--episodes", str(o.episodes), "--source", "scripted" if scripted else "teleop"]
    recorder += ["--twin-task" if o.backend == "twin" else "--no-twin-task"]
    if o.instruction:
        recorder += ["--instruction", o.instruction]
    robot_extra = ["--twin-task"] if o.backend == "twin" else []
    if scripted:
        # The operator keeps playing until the recorder has its episodes (an episode the recorder
        # refused, e.g. on a stale stream, is played again rather than leaving the job waiting).
        robot_extra += ["--scripted-episodes", str(2 * o.episodes + 2 if o.episodes else 1_000_000),
                        "--wait-for-recorder"]
    processes = [Process("recorder", "robot_rl.drivers.recorder_node", tuple(recorder), completes_job=True),
                 robot_process(o, *robot_extra), *camera_processes(o)]
    if not scripted and o.teleop != "none":
        processes.append(Process("teleop", robot_definition(o.robot).teleop_module, ("--device", o.teleop, "--rate", str(o.rate)),
                                 terminal=o.teleop == "keyboard"))
    return processes


def deploy(o: Options) -> list[Process]:
    if not o.checkpoint:
        raise ValueError("deploy needs checkpoint=<checkpoint, checkpoints/ or run folder> (from `robot-rl train`)")
    policy = ["--checkpoint", str(o.checkpoint), "--rate", str(o.rate)]
    if o.execute_steps:
        policy += ["--execute-steps", str(o.execute_steps)]
    if o.temporal_ensemble:
        policy += ["--temporal-ensemble"]
    if o.report:
        policy += ["--report", str(o.report)]
    if o.backend == "twin":  # the twin, its driver and the policy in one process: the observation is the twin's
        steps = ["--steps", str(o.steps)] if o.steps else []
        return [Process("policy", "robot_rl.drivers.policy_node",
                        (*policy, "--backend", "twin", "--seed", str(o.seed), *steps,
                         *(["--dynamics", o.dynamics] if o.dynamics else [])), completes_job=True)]
    cameras = ("--cameras", *o.cameras) if o.cameras else ()
    return [robot_process(o), *camera_processes(o),
            Process("policy", "robot_rl.drivers.policy_node", (*policy, "--observation", "topics", *cameras))]


def finetune_actor(o: Options) -> list[Process]:
    """The robot acting with the newest checkpoint of the run folder ``o.checkpoint`` (sampled actions, hot
    reload) and the recorder committing each episode of at most ``o.steps`` actions to ``o.out``. On the
    twin the recorder resets the task and starts the next episode itself, and the twin task gives the
    reward; on hardware the operator starts each episode and ends it, as a success (reward 1 on its last
    step) or not, with the ``o.teleop`` device's buttons, or at any step with its success and failure
    buttons. ``o.takeover``: the device also takes over motion while held (robot_rl.drivers.takeover);
    on the twin ``teleop=scripted`` with ``takeover`` is the task's expert taking over when the policy
    strays. The recorder stores each step's ``intervention`` flag. ``o.reward_classifier`` (hardware): the
    recorder's reward from a learned classifier, the operator's labels overriding it."""
    if not (o.checkpoint and o.out and o.steps):
        raise ValueError("finetune_actor needs checkpoint=<run folder>, out=<its online store> and steps=<episode length>")
    twin = o.backend == "twin"
    recorder = ["--robot", o.robot, "--task", o.task, "--out", str(o.out), *(("--cameras", *o.cameras) if o.cameras else ()),
                "--rate", str(o.rate), "--max-steps", str(o.steps), "--source", "policy", "--interventions",
                *(["--twin-task", "--auto-start"] if twin else ["--no-twin-task"])]
    if o.reward_classifier:
        if twin:
            raise ValueError("reward_classifier: on the twin the task gives the reward; the classifier is for hardware")
        recorder += ["--reward-classifier", str(o.reward_classifier)]
    processes = [Process("recorder", "robot_rl.drivers.recorder_node", tuple(recorder))]
    if twin:  # the policy reads the twin's state, so it runs in the robot process
        if o.takeover and o.teleop != "scripted":
            raise ValueError(f"takeover=true on the twin: teleop=scripted (the expert takes over), found teleop={o.teleop}")
        takeover = ["--scripted-takeover", *(["--takeover-budget", str(o.takeover_budget)]
                                             if o.takeover_budget is not None else [])] if o.takeover else []
        return [*processes, robot_process(o, "--twin-task", "--policy", str(o.checkpoint), *takeover)]
    cameras = ("--cameras", *o.cameras) if o.cameras else ()
    policy = ("--checkpoint", str(o.checkpoint), "--rate", str(o.rate), "--observation", "topics", *cameras,
              "--stochastic", "--poll-checkpoints", "1.0", "--wait-for-acting")
    # The operator's device sends only episode events (start, stop, success, discard): the policy moves the arm.
    if o.teleop == "scripted":
        raise ValueError("teleop=scripted plays the twin's expert: on hardware the operator's device is keyboard, "
                         "spacemouse, gamepad, or none (the recorder's services)")
    processes += [robot_process(o), *camera_processes(o), Process("policy", "robot_rl.drivers.policy_node", policy)]
    if o.teleop != "none":
        mode = "--takeover" if o.takeover else "--buttons-only"
        processes.append(Process("operator", robot_definition(o.robot).teleop_module, ("--device", o.teleop, "--rate", str(o.rate),
                                                                          mode), terminal=o.teleop == "keyboard"))
    elif o.takeover:
        raise ValueError("takeover=true needs an operator device: teleop=keyboard, spacemouse or gamepad")
    return processes


GRAPHS = {"teleop_collect": teleop_collect, "deploy": deploy}


def build_graph(name: str, options: Options) -> list[Process]:
    _check_choice("graph", name, tuple(GRAPHS))
    return GRAPHS[name](options)


def options_from_strings(values: dict[str, str]) -> Options:
    """Options from text, as launch arguments give them: ``cameras:=front,wrist``,
    ``camera_devices:=front=/dev/video0,wrist=2``, numbers as digits, an empty string for "not given"."""
    known = Options.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown arguments {unknown}: expected some of {sorted(known)}")
    parsed = {}
    for key, text in values.items():
        text = str(text).strip()
        if key == "cameras":
            parsed[key] = tuple(c for c in text.split(",") if c)
        elif key == "camera_devices":
            pairs = [p.split("=", 1) for p in text.split(",") if p]
            if any(len(p) != 2 for p in pairs):
                raise ValueError(f"camera_devices={text!r}: expected name=device pairs, e.g. front=/dev/video0")
            parsed[key] = dict(pairs)
        elif key in ("rate", "camera_fps"):
            parsed[key] = float(text)
        elif key in ("episodes", "seed", "steps", "execute_steps", "takeover_budget"):
            parsed[key] = int(text) if text else None
        elif key in ("temporal_ensemble", "takeover"):
            parsed[key] = text.lower() in ("1", "true", "yes")
        else:
            parsed[key] = text or None
    return Options(**{k: v for k, v in parsed.items() if v is not None or known[k].default is None})
