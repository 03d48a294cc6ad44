"""The episode recorder's core, without ROS: the episode state machine, the alignment of the observation
streams onto the applied-command grid, and the store writes. robot_rl.drivers.recorder_node feeds it
messages, events and timer ticks; the tests drive it directly.

    writer, note = open_store("data/teleop.zarr", spec, on_tail="drop")
    recorder = EpisodeRecorder(spec, writer, AlignedStreams({"state": StreamBuffer("joint_states")}))
    recorder.add_command(stamp, action)   # each command the driver applied (ee_command_applied)
    recorder.event("start", t)            # start, stop, success, discard (the teleop buttons)
    recorder.advance()                    # write complete rows, end episodes, check the streams (20 Hz)

The control grid is the applied-command clock: one row per applied command, at its stamp t (the
driver's clock when it wrote the target). Row t holds each observation stream's newest message stamped
at or before t (robot_rl.drivers.stamped.AlignedStreams), the applied 7-D action itself (after the safety
filter: a clipped command is recorded clipped), ``timestamp`` = t (s, system clock), and from the task
status the reward and termination of the state the action led to: the newest status stamped at or
before the next row's t (or the episode's end). So each row pairs the observation taken just before an
action with that action, as Bridge's collection loop does; a second timer at the same nominal rate would
beat against the command source's and put 0 or 2 commands in some of its periods.

- Episodes: "start" opens one at the event's time t0. Rows are the commands applied after t0, beginning
  with the first one by which every observation stream has a message stamped after t0 (no row shows the
  scene from before a task reset; the commands skipped are counted in ``leading_commands_skipped``,
  typically the one a teleop sends with "start"). "stop" closes it at its time: commands applied before
  it are its rows (a teleop's command sent with "stop" is not), and it is committed, truncated (the
  operator ended it). "success" is a stop by which the operator says the task was done: on hardware the
  last row gets reward 1 and ``terminated`` (a sparse reward the learner can fine-tune on) and the
  episode's ``success`` is True; on the twin its task status decides and "success" is a plain stop.
  "discard" drops it. "failure" is the operator's live label of the current step as a failure: the
  episode ends there, its last row reward 0 and ``terminated`` (an absorbing failure: the learner does
  not bootstrap past it), ``success`` False; on the twin, as "success", its task status decides.
  An episode also ends when the twin task reports ``terminated`` (committed,
  terminated) or after ``max_steps`` rows (committed, truncated). ``max_episodes`` kept episodes end the
  session (``done``); 0 or None: no limit (until Ctrl-C).
- Refusals: "start" is refused, with the reason, while an observation stream or the task status is stale
  (no message within ``stale_after_s``; each stale stream named), while the command stream runs more
  than 30% off the spec's control rate, during an episode, or while the last one is still closing or
  the twin task resetting (a queued "start" event waits for those two instead). The command stream is
  checked from the start on instead (a teleop sends its first command with "start"): no command
  applied within ``stale_after_s`` of the start (the driver's torque is off, no command source)
  discards the episode, naming ``ee_command_applied``.
- A stream going stale during an episode discards the episode, naming the stream: an interrupted
  demonstration the operator did not end is not kept (use stop to keep what was done).
- Twin vs hardware: with ``task_state`` in the spec, reward, terminated and success come from the task
  status (reward, success, failure, terminated), and as each episode ends the ``reset_task`` hook draws
  the next task; with ``auto_start`` the recorder then starts the next episode itself (a policy-driven
  actor). On hardware (no ``task_state``) reward is 0 but for the operator's "success", and the operator
  starts and ends each episode.
- Interventions: with ``intervention`` in the spec's optional keys, each row stores whether its command
  came from the operator (the newest ``add_intervention`` state stamped at or before the command's
  stamp: the teleop node in takeover mode sends it every tick; none received means the policy acted), and
  the episode's info holds ``interventions`` (takeovers begun in it) and ``human_steps`` (its rows).
- A learned reward (``reward_fn``: an observation dict -> success probability, and ``reward_threshold``),
  on hardware only: a row whose probability reaches the threshold gets reward 1 and ``terminated``, the
  episode ends there as a success (``ended_by`` "classifier"). The operator's labels override it: rows
  before an operator's "success" or "failure" event are never classified.
- Latency: for every row, each observation stream's age (t - stamp), the task status's age at the
  reward time, and the command's delivery delay (arrival - stamp); p50/p99 per stream over the last 1000
  rows (``latency_percentiles_ms``) and per episode in its info (``latency_ms``), with ``rows``,
  ``ended_by`` and ``command_rate_hz``.
- Crash safety: an episode is committed only at its end (robot_rl.datasets.writer), so a recorder
  killed mid-episode loses that episode only; the next recorder opening the store drops the rows it
  left (``on_tail="drop"``, noted) or keeps them as a truncated, recovered episode (``"salvage"``).
  ``close()`` discards an open episode.
"""
from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from robot_rl.datasets import EmbodimentSpec, EpisodeWriter, StoreError, StoreWriter, UncommittedTailError
from robot_rl.drivers.stamped import AlignedStreams, Sample, StaleStreamError, StreamBuffer, stale_reasons

START, STOP, SUCCESS, DISCARD, FAILURE = EPISODE_EVENTS = ("start", "stop", "success", "discard", "failure")
COMMAND_STREAM = "ee_command_applied"
INTERVENTION_STREAM = "intervention"  # the operator holds the takeover button (robot_rl.drivers.takeover)
STATUS_STREAM = "task_status"
ACTION_DIM = 7             # the arms' dx, dy, dz, droll, dpitch, dyaw, gripper; a recorder takes its spec's
LATENCY_WINDOW = 1000      # rows of per-stream latency kept for diagnostics
RATE_TOLERANCE = 0.3       # a command stream more than 30% off the control rate refuses a start
PROBLEM_SHOWN_S = 10.0     # the status stays "warn" this long after a refusal or a discard


def check_settings(spec: EmbodimentSpec, *, rate_hz: float | None = None, cameras: Iterable[str] = (),
                   max_episodes: int | None = None, max_steps: int | None = None,
                   stale_after_s: float = 0.5) -> None:
    """Refuse settings the recorder cannot honour, naming the setting, the expected and the found value."""
    if rate_hz is not None and (not rate_hz > 0 or abs(rate_hz - spec.control_rate_hz) > 1e-9):
        raise ValueError(f"rate_hz: the {spec.name!r} spec's control rate is {spec.control_rate_hz:g} Hz, found "
                         f"{rate_hz}; record at the spec's rate (its actions are deltas per control period)")
    cameras = list(cameras)
    if cameras and set(cameras) != set(spec.cameras):
        raise ValueError(f"cameras: expected the spec's cameras {sorted(spec.cameras)}, found {sorted(cameras)}; "
                         "build the spec with the cameras you record")
    if max_episodes is not None and max_episodes < 0:
        raise ValueError(f"max_episodes: expected a count of episodes, or 0 / None for no limit (until Ctrl-C), "
                         f"found {max_episodes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps: expected at least 1 (or None: no limit), found {max_steps}")
    if not stale_after_s > 0:
        raise ValueError(f"stale_after_s: expected a positive number of seconds, found {stale_after_s}")


def open_store(out, spec: EmbodimentSpec, on_tail: str = "drop", durable: bool = True) -> tuple[StoreWriter, str]:
    """The writer of the store at ``out`` (created if missing), and a note when rows a killed recorder
    left after the last commit were handled (``on_tail``: drop, salvage, or error: refuse)."""
    out = os.fspath(out)
    try:
        return StoreWriter.open_or_create(out, spec, durable=durable), ""
    except UncommittedTailError as err:
        if on_tail == "error":
            raise
        writer = StoreWriter.open_or_create(out, spec, durable=durable, on_tail=on_tail)
        action = "dropped" if on_tail == "drop" else "kept as a truncated, recovered episode"
        return writer, f"{out}: the rows of an episode a previous recorder did not commit were {action} ({err})"


@dataclass
class _Episode:
    writer: EpisodeWriter
    t0: float                           # the start event's time
    cursor: float                       # the newest command stamp looked at
    pending: Sample | None = None       # the command whose row waits for the next one (its reward time)
    rows: int = 0
    skipped: int = 0                    # leading commands without a fresh observation
    first_t: float = math.inf
    last_t: float = -math.inf
    ages: dict[str, list[float]] = field(default_factory=dict)
    success: bool = False
    operator_success: bool = False      # hardware: the operator's "success" labels the last row
    operator_failure: bool = False      # the operator's "failure" labels the last row
    interventions: int = 0              # takeovers begun in this episode
    human_steps: int = 0                # rows whose command came from the operator
    last_human: bool = False
    stop_at: float | None = None        # closing: rows are the commands applied before this


def _quiet(*args, **kwargs) -> None:
    return None


class EpisodeRecorder:
    """See the module docstring. ``observations``: the spec's observation streams by key; the hooks:
    ``log(level, message)`` (info, warning, error), ``on_change()`` (the status changed:
    publish it now), ``reset_task()`` (draw the next twin task) and ``resetting()`` (is it still drawing).
    ``clock``: the present time in seconds of the stamps' clock."""

    def __init__(self, spec: EmbodimentSpec, writer: StoreWriter, observations: AlignedStreams, *,
                 instruction: str = "", source: str = "teleop", recorder: str = "recorder",
                 max_episodes: int | None = None, max_steps: int | None = None, auto_start: bool = False,
                 log: Callable[..., None] = _quiet, on_change: Callable[[], None] = _quiet,
                 reset_task: Callable[[], None] = _quiet, resetting: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.time, rewards_from_status: bool | None = None,
                 reward_fn: Callable[[dict], float] | None = None, reward_threshold: float = 0.5):
        check_settings(spec, max_episodes=max_episodes, max_steps=max_steps,
                       stale_after_s=observations.stale_after_s)
        missing = [k for k in spec.obs_keys if k not in observations.buffers]
        if missing:
            raise ValueError(f"observations: no stream for the spec's keys {missing}; give one per key of "
                             f"{list(spec.obs_keys)}")
        self.spec, self.writer, self.observations = spec, writer, observations
        self.period = 1.0 / spec.control_rate_hz
        self.stale_after_s = observations.stale_after_s
        self.instruction, self.source, self.recorder = instruction, source, recorder
        self.max_episodes, self.max_steps, self.auto_start = max_episodes or None, max_steps, auto_start
        self._log, self._on_change, self._reset_task, self._resetting = log, on_change, reset_task, resetting
        self._logged_at: dict[str, float] = {}  # throttled messages: level -> when one was last logged
        self.clock = clock
        # Rewards and success from the task_status stream: the twin's task node (default: when the spec has
        # task_state); a recording that kept task_status (an imported bag) may ask for it explicitly.
        self.twin = "task_state" in spec.state if rewards_from_status is None else rewards_from_status
        self.commands = StreamBuffer(COMMAND_STREAM, keep_s=30.0, max_samples=2000)
        self.action_dim = int(spec.keys()["action"].shape[0])  # the robot's action (rc_car: steering, throttle)
        self.records_interventions = "intervention" in spec.optional_keys
        self.interventions = StreamBuffer(INTERVENTION_STREAM, keep_s=30.0, max_samples=2000)
        if reward_fn is not None and self.twin:
            raise ValueError("reward_fn: the twin task gives the reward; a learned reward is for hardware "
                             "(a spec without task_state)")
        if not 0.0 < reward_threshold <= 1.0:
            raise ValueError(f"reward_threshold: expected a probability in (0, 1], found {reward_threshold}")
        self.reward_fn, self.reward_threshold = reward_fn, float(reward_threshold)
        self.task_status = StreamBuffer(STATUS_STREAM, max_samples=500) if self.twin else None
        self.kept, self.discarded, self.refused = 0, 0, 0
        self.last_problem, self._problem_time = "", -math.inf
        self.latency: dict[str, deque[float]] = {}
        self._events: deque[tuple[str, float]] = deque()
        self._episode: _Episode | None = None

    # --- inputs ---------------------------------------------------------------------------------

    def add_command(self, stamp: float, action, received: float | None = None) -> None:
        """A command the driver applied at ``stamp`` (its normalized action after the safety filter)."""
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (self.action_dim,):
            raise ValueError(f"{COMMAND_STREAM}: expected {self.action_dim} values, found shape {action.shape}")
        self.commands.add(stamp, action, self.clock() if received is None else received)

    def add_intervention(self, stamp: float, held: bool, received: float | None = None) -> None:
        """The operator's takeover state at ``stamp``: True while a human's commands replace the policy's."""
        self.interventions.add(stamp, bool(held), self.clock() if received is None else received)

    def add_status(self, stamp: float, values, received: float | None = None) -> None:
        """The twin task's status at ``stamp``: (reward, success, failure, terminated)."""
        self.task_status.add(stamp, np.asarray(values, dtype=float), self.clock() if received is None else received)

    def event(self, kind: str, t: float) -> None:
        """An episode event (start, stop, success, discard) sent at ``t``: queued, then handled in order."""
        if kind not in EPISODE_EVENTS:
            raise ValueError(f"episode event: expected one of {EPISODE_EVENTS}, found {kind!r}")
        self._events.append((kind, t))
        self.advance()

    # --- state ----------------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self._episode is not None

    @property
    def done(self) -> bool:
        return self.max_episodes is not None and self.kept >= self.max_episodes

    @property
    def rows(self) -> int:
        """Rows written into the episode in progress (0 when none is)."""
        return self._episode.rows if self._episode is not None else 0

    @property
    def state(self) -> str:
        return ("recording" if self.recording else "resetting" if self._resetting() else "done" if self.done
                else "idle")

    def buffers(self) -> list[StreamBuffer]:
        return [*self.observations.buffers.values(), self.commands, *([self.task_status] if self.twin else [])]

    def stream_names(self) -> list[str]:
        return [b.name for b in self.buffers()]

    # --- episodes -------------------------------------------------------------------------------

    def start(self, t: float) -> tuple[bool, str]:
        """Open an episode whose rows are the commands applied after ``t``; (success, message)."""
        refusal = self.start_refusal()
        if refusal is not None:
            self.refused += 1
            return self._problem(f"start refused: {refusal}")
        writer = self.writer.new_episode(instruction=self.instruction, source=self.source, recorder=self.recorder,
                                         streams=self.stream_names())
        self._episode = _Episode(writer, t0=t, cursor=t)
        message = f"episode {self.writer.num_episodes} started"
        self._log("info", message)
        self._on_change()
        return True, message

    def start_refusal(self) -> str | None:
        """Why a start now would be refused, or None."""
        if self.done:
            return f"{self.kept} episodes kept, the requested {self.max_episodes}"
        if self.recording:
            return "an episode is being recorded" + (" (closing)" if self._episode.stop_at is not None else
                                                     "; stop or discard it first")
        if self._resetting():
            return "the twin task is resetting; start again in a moment"
        # The command stream is checked from the start on instead: a teleop sends its first command with "start".
        stale = stale_reasons([b for b in self.buffers() if b is not self.commands], self.clock(), self.stale_after_s)
        if stale:
            return "stale streams: " + "; ".join(f"{name} ({why})" for name, why in stale.items())
        rate = self._command_rate()
        if rate is not None and abs(rate * self.period - 1.0) > RATE_TOLERANCE:
            return (f"{COMMAND_STREAM} arrives at {rate:.1f} Hz, the spec's control rate is {1 / self.period:g} Hz: "
                    "run the command source at the control rate")
        return None

    def _command_rate(self) -> float | None:
        recent = self.commands.after(self.clock() - 2.0)
        if len(recent) < 4:
            return None
        return 1.0 / float(np.median(np.diff([s.stamp for s in recent])))

    def end(self, t: float, *, discard: bool, success: bool = False, failure: bool = False) -> tuple[bool, str]:
        """Stop (keep the rows applied before ``t``; ``success``: the operator says the task was done) or
        discard the episode in progress; (success, message)."""
        episode = self._episode
        if episode is None or episode.stop_at is not None:
            # Not a fault: a teleop's stop after an episode the twin task or max_steps already ended.
            message = f"{'discard' if discard else 'stop'} ignored: " + (
                "the episode is already stopping" if episode is not None else "no episode is being recorded")
            self._say("warning", message, throttle_s=1.0)
            return False, message
        self._reset_task()  # now: the rows before t are in the buffers; the next task must not wait
        if discard:
            return self._discard("discarded by the operator", level="info")
        episode.stop_at = t
        episode.operator_success = success and not self.twin  # on the twin, its task status decides
        episode.operator_failure = failure and not self.twin
        return True, "stopping: the episode is committed once its last commands are in"

    def apply(self, kind: str, t: float) -> tuple[bool, str]:
        """Handle an episode event now (a service call), not queued; (success, message)."""
        if kind == START:
            return self.start(t)
        result = self.end(t, discard=kind == DISCARD, success=kind == SUCCESS, failure=kind == FAILURE)
        if self.recording:
            self._record()
        return result

    def advance(self) -> None:
        """Handle queued events, write the rows that are complete, end episodes, check the streams."""
        self._handle_events()
        if self.recording:
            self._record()
        if not self.recording and self.auto_start and not self._events:
            refusal = self.start_refusal()  # retried every tick until the streams are live
            if refusal is None:
                self.start(self.clock())
            elif not self.done and not self._resetting():
                self._set_problem(f"auto-start waits: {refusal}")

    def _handle_events(self) -> None:
        while self._events:
            kind, t = self._events[0]
            closing = self.recording and self._episode.stop_at is not None
            if kind == START and (closing or self._resetting()):
                return  # the last episode is closing or the task resetting: start after that
            self._events.popleft()
            self.apply(kind, t)

    def _record(self) -> None:
        episode, now = self._episode, self.clock()
        try:
            end = math.inf if episode.stop_at is None else episode.stop_at
            for command in self.commands.after(episode.cursor, end):
                episode.cursor = command.stamp
                if episode.rows == 0 and episode.pending is None and not self._observed_since(episode.t0,
                                                                                              command.stamp):
                    episode.skipped += 1
                    continue
                if episode.pending is not None and not self._write_row(episode.pending, command.stamp):
                    return
                episode.pending = command
            if episode.stop_at is not None:
                if self.commands.after(episode.stop_at - 1e-9) or now >= episode.stop_at + self.period:
                    if episode.pending is None or self._write_row(episode.pending, episode.stop_at):
                        self._finish("stop")
                return
            stale = self._stale_during_episode(now)
            if stale:
                raise StaleStreamError(stale, self.stale_after_s)
        except StaleStreamError as err:
            self._discard(f"a stream went stale mid-episode: {err}", level="error")
            self._reset_task()
        except StoreError as err:
            self._discard(f"the store refused a row: {err}", level="error")

    def _observed_since(self, t0: float, t: float) -> bool:
        """Every observation stream has a message stamped after ``t0`` and at or before ``t``: the first
        row never shows the scene from before a task reset."""
        samples = [b.latest_at(t) for b in self.observations.buffers.values()]
        return all(s is not None and s.stamp > t0 for s in samples)

    def _stale_during_episode(self, now: float) -> dict[str, str]:
        stale = stale_reasons([b for b in self.buffers() if b is not self.commands], now, self.stale_after_s)
        t0, last = self._episode.t0, self.commands.last
        since = max(t0, last.stamp if last is not None else t0)
        if now - since > self.stale_after_s:
            stale[COMMAND_STREAM] = ("no command applied since the episode started" if since == t0 else
                                     f"last message {now - since:.2f} s old") + \
                " (is the driver's torque on and a command source publishing?)"
        return stale

    def _write_row(self, command: Sample, reward_time: float) -> bool:
        """Write the row of ``command``; False when it ended the episode."""
        episode, t = self._episode, command.stamp
        obs, ages = self.observations.observation_at(t)
        ages[COMMAND_STREAM] = command.received - t
        reward, terminated = 0.0, False
        if self.twin:
            status = self.task_status.latest_at(reward_time)
            if status is None or reward_time - status.stamp > self.stale_after_s:
                raise StaleStreamError({STATUS_STREAM: "no status at the row's reward time"}, self.stale_after_s)
            reward, success, _failure, terminated = status.value
            episode.success |= bool(success)
            terminated = bool(terminated)
            ages[STATUS_STREAM] = reward_time - status.stamp
        ended_by = "terminated"
        last_labelled = reward_time == episode.stop_at and (episode.operator_success or episode.operator_failure)
        if last_labelled and episode.operator_success:  # the last row of a labelled success
            reward, terminated, episode.success, ended_by = 1.0, True, True, "success"
        elif last_labelled:
            reward, terminated, episode.success, ended_by = 0.0, True, False, "failure"
        elif self.reward_fn is not None and float(self.reward_fn(obs)) >= self.reward_threshold:
            reward, terminated, episode.success, ended_by = 1.0, True, True, "classifier"
        row = {**obs, "action": command.value, "reward": np.float32(reward), "terminated": terminated,
               "truncated": False, "timestamp": t}
        if self.records_interventions:
            row["intervention"] = human = self._human_at(t)
            episode.human_steps += human
            episode.interventions += human and not episode.last_human
            episode.last_human = human
        episode.writer.add(row)
        episode.rows += 1
        episode.first_t, episode.last_t = min(episode.first_t, t), t
        for name, age in ages.items():
            episode.ages.setdefault(name, []).append(age)
            self.latency.setdefault(name, deque(maxlen=LATENCY_WINDOW)).append(age)
        if not terminated and (self.max_steps is None or episode.rows < self.max_steps):
            return True
        self._finish(ended_by if terminated else "max_steps")
        self._reset_task()
        return False

    def _human_at(self, t: float) -> bool:
        state = self.interventions.latest_at(t)
        return bool(state is not None and state.value)

    def _finish(self, ended_by: str) -> None:
        episode = self._episode
        if episode.rows == 0:
            self._discard(f"ended by {ended_by} before any command was applied", level="warning")
            return
        span = episode.last_t - episode.first_t
        labelled = self.twin or episode.operator_success or episode.operator_failure or ended_by == "classifier"
        if self.records_interventions:
            info_extra = {"interventions": episode.interventions, "human_steps": episode.human_steps}
        else:
            info_extra = {}
        info = {**info_extra, "ended_by": ended_by, "rows": episode.rows, "latency_ms": percentiles_ms(episode.ages),
                "command_rate_hz": round((episode.rows - 1) / span, 3) if span > 0 else None,
                "leading_commands_skipped": episode.skipped}
        index = episode.writer.commit(success=episode.success if labelled else None, **info)
        self._episode = None
        self.kept += 1
        self._log("info", f"episode {index} kept: {episode.rows} rows, ended by {ended_by}"
                  + (f", success {episode.success}" if labelled else ""))
        self._on_change()

    def _discard(self, reason: str, level: str) -> tuple[bool, str]:
        message = f"episode discarded: {reason}"
        if level != "info":
            self._set_problem(message)
        if self._episode is not None:
            self._episode.writer.discard()
            self._episode = None
        self.discarded += 1
        self._log(level, message)
        self._on_change()
        return True, message

    def _problem(self, message: str) -> tuple[bool, str]:
        self._set_problem(message)
        self._say("error", message, throttle_s=1.0)
        self._on_change()
        return False, message

    def _say(self, level: str, message: str, throttle_s: float) -> None:
        """Log at most one message of ``level`` per ``throttle_s`` (a start button held down)."""
        now = time.monotonic()
        if now - self._logged_at.get(level, -math.inf) >= throttle_s:
            self._logged_at[level] = now
            self._log(level, message)

    def _set_problem(self, message: str) -> None:
        self.last_problem, self._problem_time = message, time.monotonic()

    def report_problem(self, message: str) -> None:
        """A problem outside the recorder (a failed task reset): logged and shown in the status."""
        self._problem(message)

    # --- status ---------------------------------------------------------------------------------

    def latency_percentiles_ms(self) -> dict[str, dict[str, float]]:
        return percentiles_ms(self.latency)

    def status(self) -> tuple[str, str, dict[str, object]]:
        """(level: ok, warn or error; message; values) of the recorder now, for diagnostics."""
        stale = stale_reasons(self.buffers(), self.clock(), self.stale_after_s)
        state = self.state
        if stale:
            level, message = "error" if self.recording else "warn", "stale: " + ", ".join(stale)
        elif time.monotonic() - self._problem_time < PROBLEM_SHOWN_S:
            level, message = "warn", self.last_problem
        else:
            level, message = "ok", state
        values = {"state": state, "store": self.writer.url, "episodes_in_store": self.writer.num_episodes,
                  "episodes_kept": self.kept, "episodes_discarded": self.discarded, "starts_refused": self.refused,
                  "rows_in_episode": self.rows, "twin_task": self.twin,
                  "stale_streams": "; ".join(f"{k} ({v})" for k, v in stale.items()),
                  "last_problem": self.last_problem}
        for name, p in self.latency_percentiles_ms().items():
            values[f"latency_{name}_p50_ms"], values[f"latency_{name}_p99_ms"] = p["p50"], p["p99"]
        return level, message, values

    def close(self) -> None:
        """Discard an episode still open (never committed) and close the store; quiet: no hook is called
        (at shutdown the node's logger and publishers may be gone)."""
        episode, self._episode = self._episode, None
        try:
            if episode is not None:
                episode.writer.discard()
        finally:
            self.writer.close()


def percentiles_ms(ages) -> dict[str, dict[str, float]]:
    return {name: {"p50": round(float(np.percentile(values, 50)) * 1e3, 2),
                   "p99": round(float(np.percentile(values, 99)) * 1e3, 2)}
            for name, values in ages.items() if len(values)}
