"""What the policy node does, without ROS: a checkpoint's policy checked against an observation source,
one action per control tick (action chunks executed), hot reload, latency windows and the run's report.
robot_rl.drivers.policy_node wires it to topics and timers; this module imports no rclpy.

    runner = PolicyRunner(load_checkpoint_policy("runs/train/<run>"), twin_observation(backend))
    action = runner.next_action()          # each tick: publish it, then runner.answered() on the driver's answer

*Observation source*: a callable ``() -> dict[str, np.ndarray]`` (unbatched) giving at least the keys the
checkpoint reads (its config's ``obs_keys`` and ``cameras``) in the shapes of its spec.
``twin_observation(backend)`` reads the WidowX twin in this process; robot_rl.drivers.streams'
``topic_observation`` builds the same keys from a driver's topics on hardware. A checkpoint that reads
``task_state`` (privileged object and goal state only a twin has) cannot run on hardware: it is refused
naming the key.

*Chunks*: a policy emitting [h, 7] actions goes through a robot_rl.learner.chunking.ChunkExecutor (shared
with the training rollouts): by default queried every h ticks with the chunk run open-loop;
``execute_steps=k`` runs k <= h actions per query; ``temporal_ensemble=True`` queries every tick and
averages the overlapping predictions (ACT). Actions are clipped to [-1, 1].

*Hot reload*: ``request_reload(path)`` loads a checkpoint folder, ``checkpoints/`` folder or run folder
(its latest) at once (safetensors only; nothing is unpickled); it replaces the running policy at the
start of the next tick, any open-loop chunk dropped. A path that does not load, a checkpoint for another
robot, or one that reads a key the source lacks is refused: the old policy keeps running and the status
turns ERROR naming the path and the reason, until a later checkpoint loads. ``poll()`` requests the
running checkpoint's ``checkpoints/latest`` when it is newer.

*Command latency* is a round trip timed with time.perf_counter: from just before a command is published
to the arrival of the driver's answer for it (CommandTimer; the node's docstring says what it spans).
Answers carry no command id: they are matched to commands in FIFO order (the driver answers in order). A
command the driver refused gets no answer, so when an answer arrives, the pending commands older than
half a control period that have a newer one pending are dropped and counted as unanswered: the newer
command is the one answered, given round trips well within a control period. The price: a round trip
longer than a control period is not measured as such but shows up as unanswered commands. The matching
assumes one publisher of commands in the namespace (the deploy graph's case).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.learner.checkpoint import latest_checkpoint, resolve_checkpoint
from robot_rl.learner.chunking import ACT_DECAY, ChunkExecutor

EE_ACTION_DIM = 7         # the arms'; a checkpoint's robot spec (sim/<robot>/spec.py ACTION_DIM) decides
LATENCY_WINDOW = 1000     # inference and command timings kept for p50/p99
MAX_UNANSWERED = 100      # commands awaiting the driver's answer; older ones count as unanswered
PRIVILEGED_KEYS = {"task_state": "twin-only privileged object and goal state; retrain with obs_keys=[state]"}

ObservationSource = Callable[[], dict[str, np.ndarray]]


class ObservationMismatch(ValueError):
    """The observation source cannot give what the checkpoint reads (a missing key or a wrong shape)."""


# --- the policy of a checkpoint ---------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedPolicy:
    agent: object
    folder: Path
    robot: str
    task: str
    keys: tuple[str, ...]               # the observation keys the agent reads: state keys, then cameras
    shapes: dict[str, tuple[int, ...]]  # per key: the unbatched shape the agent expects (state flattened)
    spec: EmbodimentSpec                # the spec the agent was built for (the checkpoint's spec.json)
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (128, 128)

    def act(self, obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        """[h, 7] actions (h = 1 without chunks) for one observation."""
        batch = {k: np.asarray(obs[k])[None] for k in self.keys}
        actions = np.asarray(self.agent.act(batch, deterministic=deterministic))[0]
        return actions if actions.ndim == 2 else actions[None]


def load_checkpoint_policy(checkpoint: str | os.PathLike) -> LoadedPolicy:
    """The agent of a checkpoint and what it reads, from the checkpoint alone (config.yaml read once,
    spec.json, safetensors weights): no twin is built."""
    from robot_rl.learner.policy import load_agent
    from robot_rl.sim.specs import robot_spec_module

    loaded = load_agent(checkpoint)
    agent, cfg = loaded.agent, loaded.config
    robot = robot_spec_module(str(cfg.robot))  # the robot's action: the arms' 7-D deltas, the car's (steering, throttle)
    names = getattr(robot, "ACTION_NAMES", ("dxyz", "drpy", "gripper"))
    if agent.action_dim != robot.ACTION_DIM:
        raise ValueError(f"checkpoint={loaded.folder}: its actions have {agent.action_dim} values, {cfg.robot}'s "
                         f"ee_delta_command takes {robot.ACTION_DIM} ({', '.join(names)})")
    shapes = {**{k: (int(n),) for k, n in agent.shapes.state.items()},
              **{k: tuple(shape) for k, shape in agent.shapes.cameras.items()}}
    return LoadedPolicy(agent, loaded.folder, str(cfg.robot), str(cfg.task), loaded.keys, shapes, loaded.spec,
                        tuple(cfg.cameras), tuple(cfg.get("image_size", (128, 128))))


def check_observation(policy: LoadedPolicy, obs: dict[str, np.ndarray]) -> None:
    """Raise ObservationMismatch naming the first key the source lacks or gives in the wrong shape."""
    for key in policy.keys:
        if key not in obs:
            why = f" ({PRIVILEGED_KEYS[key]})" if key in PRIVILEGED_KEYS else ""
            raise ObservationMismatch(
                f"checkpoint={policy.folder} reads observation key {key!r}{why}, which the observation source "
                f"does not provide (it gives {sorted(obs)}); use a checkpoint trained on the keys the source has")
        expected, found = policy.shapes[key], np.shape(obs[key])
        is_camera = len(expected) == 3
        if (found != expected) if is_camera else (int(np.prod(found)) != expected[0]):
            raise ObservationMismatch(f"checkpoint={policy.folder}: observation key {key!r} expected shape "
                                      f"{expected}, the source gives {found}")


def twin_observation(backend, cameras: tuple[str, ...] = ()) -> ObservationSource:
    """The twin backend's observation (state, task_state and ``cameras`` rendered): a snapshot taken under
    its physics lock (WidowXTwinBackend.observe), so never a half-stepped state."""
    cameras = tuple(cameras)
    return lambda: backend.observe(cameras)


# --- timing -----------------------------------------------------------------------------------------

def percentiles(window) -> tuple[float, float]:
    """(p50, p99) of ``window``; NaN when it is empty."""
    if not window:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(np.fromiter(window, float), [50, 99])
    return float(p50), float(p99)


@dataclass
class CommandTimer:
    """Round trips command -> the driver's answer, matched FIFO (module docstring). Times in seconds of
    time.perf_counter; ``now`` defaults to it."""

    period_s: float
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    unanswered: int = 0
    _pending: deque = field(default_factory=deque)  # publish times, oldest first

    def sent(self, now: float | None = None) -> None:
        if len(self._pending) >= MAX_UNANSWERED:
            self._pending.popleft()
            self.unanswered += 1
        self._pending.append(time.perf_counter() if now is None else now)

    def answered(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        pending = self._pending
        while len(pending) > 1 and now - pending[0] > 0.5 * self.period_s:
            pending.popleft()  # refused by the driver: the answer is the newer command's
            self.unanswered += 1
        if pending:  # else an answer to a command already counted unanswered
            self.latencies_ms.append(1e3 * (now - pending.popleft()))

    @property
    def pending(self) -> int:
        return len(self._pending)


# --- the runner -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunnerStatus:
    """The node's diagnostics in plain values: ``ok`` False while the last checkpoint was refused."""

    ok: bool
    message: str
    values: dict[str, str]


class PolicyRunner:
    """Observation -> agent -> one clipped 7-D action per tick; hot reload; the run's numbers.

    ``log`` takes .info(str) and .error(str) (a logging.Logger or an rclpy logger); ``on_change`` is called
    after a new policy swapped in or a checkpoint was refused (the node publishes its diagnostics then)."""

    def __init__(self, policy: LoadedPolicy | str | os.PathLike, observe: ObservationSource, *,
                 rate_hz: float = 5.0, deterministic: bool = True, execute_steps: int | None = None,
                 temporal_ensemble: bool = False, ensemble_decay: float = ACT_DECAY, log=None,
                 on_change: Callable[[], None] = lambda: None):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz: expected a positive control rate in Hz, found {rate_hz}")
        self.observe, self.rate_hz, self.deterministic = observe, float(rate_hz), deterministic
        self.log, self.on_change = log or logging.getLogger("robot_rl.policy"), on_change
        self.chunks = ChunkExecutor(execute_steps, temporal_ensemble, ensemble_decay)
        self.policy = self._checked(policy)
        self.pending: LoadedPolicy | None = None
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.commands = CommandTimer(1.0 / self.rate_hz)
        self.actions_published, self.reloads = 0, 0
        self.refusal: str | None = None
        self._refused_path: Path | None = None
        self._ticks, self._window_start, self.control_rate_hz = 0, time.monotonic(), 0.0

    # --- the control loop ---------------------------------------------------------------------

    def next_action(self) -> np.ndarray:
        """This tick's action (a pending policy swapped in first); counted as published now."""
        self._ticks += 1
        self._swap_in_pending()
        if self.chunks.needs_query():
            obs = self.observe()
            start = time.perf_counter()
            actions = self.policy.act(obs, self.deterministic)
            self.latencies_ms.append(1e3 * (time.perf_counter() - start))
            self.chunks.push(actions)
        action = np.clip(np.asarray(self.chunks.next_action(), dtype=float), -1.0, 1.0)
        self.commands.sent()
        self.actions_published += 1
        return action

    def answered(self) -> None:
        """The driver's answer to a command arrived (ee_command_applied)."""
        self.commands.answered()

    @property
    def awaiting_answer(self) -> bool:
        """A command was published and the driver's answer for it has not arrived (yet)."""
        return self.commands.pending > 0

    def _swap_in_pending(self) -> None:
        if self.pending is None:
            return
        self.policy, self.pending = self.pending, None
        self.chunks.reset()
        self.reloads += 1
        self.refusal = None
        self.log.info(f"now running checkpoint {self.policy.folder}")
        self.on_change()

    # --- hot reload ---------------------------------------------------------------------------

    def request_reload(self, path: str | os.PathLike) -> bool:
        """Load ``path`` now; it replaces the running policy at the next tick. False (and an ERROR status,
        the old policy running on) when it is refused."""
        try:
            policy = self._checked(path, robot=self.policy.robot)
        except Exception as err:  # any bad checkpoint: keep driving with the old one
            self.refusal = f"checkpoint {str(path)!r} refused, still running {self.policy.folder}: {err}"
            self._refused_path = _resolved_or_none(path)
            self.log.error(self.refusal)
            self.on_change()
            return False
        if policy.folder.resolve() == self.policy.folder.resolve():
            self.log.info(f"checkpoint {policy.folder} is already running")
            return True
        self.pending = policy
        self.log.info(f"loaded checkpoint {policy.folder}; switching at the next tick")
        return True

    def poll(self) -> None:
        """Request the running checkpoint folder's ``latest`` when it names another (not refused) one."""
        latest = latest_checkpoint(self.policy.folder.parent)
        if latest is not None and latest.resolve() not in (self.policy.folder.resolve(), self._refused_path):
            self.request_reload(latest)

    def _checked(self, policy: LoadedPolicy | str | os.PathLike, robot: str | None = None) -> LoadedPolicy:
        if not isinstance(policy, LoadedPolicy):
            policy = load_checkpoint_policy(policy)
        if robot is not None and policy.robot != robot:
            raise ValueError(f"checkpoint={policy.folder} drives robot {policy.robot!r}, this node {robot!r}")
        check_observation(policy, self.observe())
        return policy

    # --- numbers --------------------------------------------------------------------------------

    def latency_percentiles_ms(self) -> tuple[float, float]:
        """(p50, p99) of the recent inference latencies in ms; NaN before the first query."""
        return percentiles(self.latencies_ms)

    def command_latency_percentiles_ms(self) -> tuple[float, float]:
        """(p50, p99) of the recent command round trips in ms; NaN before the first answer."""
        return percentiles(self.commands.latencies_ms)

    def summary(self) -> dict:
        """The run's numbers: what the report writes (NaN where nothing was measured yet)."""
        (p50, p99), (c50, c99) = self.latency_percentiles_ms(), self.command_latency_percentiles_ms()
        return {"checkpoint": str(self.policy.folder), "task": f"{self.policy.robot}/{self.policy.task}",
                "actions_published": self.actions_published, "inference_p50_ms": p50, "inference_p99_ms": p99,
                "inference_samples": len(self.latencies_ms), "command_p50_ms": c50, "command_p99_ms": c99,
                "command_samples": len(self.commands.latencies_ms), "commands_unanswered": self.commands.unanswered,
                "commands_pending": self.commands.pending, "reloads": self.reloads}

    def status(self) -> RunnerStatus:
        """summary() and the control rate achieved since the last status, as diagnostics values."""
        now = time.monotonic()
        if now > self._window_start and self._ticks:
            self.control_rate_hz = self._ticks / (now - self._window_start)
            self._ticks, self._window_start = 0, now
        values = {**{k: f"{v:.2f}" if isinstance(v, float) else v for k, v in self.summary().items()},
                  "control_rate_hz": f"{self.control_rate_hz:.1f}", "control_rate_target_hz": f"{self.rate_hz:.1f}",
                  "deterministic": self.deterministic, "last_refusal": self.refusal or ""}
        message = self.refusal or f"running {self.policy.folder.name}"
        return RunnerStatus(self.refusal is None, message, {k: str(v) for k, v in values.items()})


def _resolved_or_none(path) -> Path | None:
    try:
        return resolve_checkpoint(path).resolve()
    except (OSError, ValueError):
        return None


# --- the report ---------------------------------------------------------------------------------------

def report_text(summary: dict, success: bool | None) -> str:
    """The run's outcome and latencies as printed at the end (``success`` None: not known, hardware)."""
    s = summary
    actions, checkpoint = s["actions_published"], s["checkpoint"]
    return "\n".join((
        f"{actions} actions sent (checkpoint {checkpoint})" if success is None
        else f"success: {success} after {actions} actions (checkpoint {checkpoint})",
        f"inference latency: p50 {s['inference_p50_ms']:.2f} ms, p99 {s['inference_p99_ms']:.2f} ms over "
        f"{s['inference_samples']} queries",
        f"command latency: p50 {s['command_p50_ms']:.2f} ms, p99 {s['command_p99_ms']:.2f} ms over "
        f"{s['command_samples']} commands (round trip ee_delta_command -> ee_command_applied; "
        f"{s['commands_unanswered'] + s['commands_pending']} unanswered)"))


def write_report(path: str | os.PathLike, summary: dict, success: bool | None) -> Path:
    """``summary`` (PolicyRunner.summary()) and ``success`` as JSON, written atomically; a latency not
    measured is null."""
    report = {"success": success, **{k: None if isinstance(v, float) and not math.isfinite(v) else v
                                     for k, v in summary.items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, path)
    return path
