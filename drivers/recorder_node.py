"""The recorder node: state, cameras and the commands the driver actually applied, aligned by stamp and
written as episodes into the trajectory store, with the embodiment spec.

    python -m robot_rl.drivers.recorder_node --robot widowx --task pick_place --out data/teleop.zarr \\
        --cameras front --episodes 20 [--twin-task | --no-twin-task] [--source teleop]

    node = RecorderNode(spec, "data/teleop.zarr", max_episodes=2)   # beside the driver, cameras, teleop

| name                 | kind    | type                                  | rate                  | QoS                          |
|----------------------|---------|---------------------------------------|-----------------------|------------------------------|
| `joint_states`       | subscr. | sensor_msgs/JointState                | the driver's (50 Hz)  | best effort, last 200        |
| `<camera>/image_raw` | subscr. | sensor_msgs/Image                     | the camera's          | best effort, last 30         |
| `ee_command_applied` | subscr. | sensor_msgs/JointState (7, named)     | the command rate      | reliable, last 100           |
| `task_state`         | subscr. | sensor_msgs/JointState (twin only)    | the twin task node's  | reliable, last 10            |
| `task_status`        | subscr. | sensor_msgs/JointState (twin only)    | the twin task node's  | reliable, last 10            |
| `episode_control`    | subscr. | std_msgs/String: start, stop, success, discard | event (teleop) | reliable, volatile, last 10 |
| `diagnostics`        | publish | diagnostic_msgs/DiagnosticArray       | 1 Hz, at once on news | reliable, volatile, last 10  |
| `start_episode`      | service | std_srvs/Trigger                      | -                     | services default             |
| `stop_episode`       | service | std_srvs/Trigger                      | -                     | services default             |
| `success_episode`    | service | std_srvs/Trigger                      | -                     | services default             |
| `discard_episode`    | service | std_srvs/Trigger                      | -                     | services default             |
| `reset_task`         | client  | std_srvs/Trigger (twin only)          | after each episode    | services default             |

The control grid is the applied-command clock: one row per ``ee_command_applied`` message, at its stamp
t (the driver's clock when it wrote the target). Row t holds each observation stream's newest message
stamped at or before t (``state`` from joint_states and the forward kinematics, ``task_state``, camera
frames: robot_rl.drivers.streams), the applied 7-D action itself (after the safety filter: a clipped
command is recorded clipped), ``timestamp`` = t (s, system clock), and from ``task_status`` the reward
and termination of the state the action led to: the newest status stamped at or before the next row's
t (or the episode's end). So each row pairs the observation taken just before an action with that
action, as Bridge's collection loop does; a second timer at the same nominal rate would beat against the
command source's and put 0 or 2 commands in some of its periods.

- Episodes: "start" (topic or service) opens one at the event's time t0 (the publisher's source
  timestamp for the topic, so a recorder busy committing still cuts at the right command). Rows are the
  commands applied after t0, beginning with the first one by which every observation stream has a
  message stamped after t0 (no row shows the scene from before a task reset; the commands skipped are
  counted in ``leading_commands_skipped``, typically the one a teleop sends with "start"). "stop" closes
  it at its time: commands applied before it are its rows (a teleop's command sent with "stop" is not),
  and it is committed, truncated (the operator ended it). "success" is a stop by which the operator says
  the task was done: on hardware the last row gets reward 1 and ``terminated`` (a sparse reward the
  learner can fine-tune on) and the episode's ``success`` is True; on the twin its task status decides
  and "success" is a plain stop. "discard" drops it. An episode also ends when
  the twin task reports ``terminated`` (committed, terminated) or after ``max_steps`` rows (committed,
  truncated). ``max_episodes`` kept episodes end the session (``done``).
- Refusals: "start" is refused, with the reason in the log, the service response and diagnostics, while
  an observation stream or the task status is stale (no message within ``stale_after_s``; each stale
  stream named), while the command stream runs more than 30% off the spec's control rate, during an
  episode, or while the last one is still closing or the twin task resetting (a "start" from the topic
  waits for those two instead). The command stream is checked from the start on instead (a teleop sends
  its first command with "start"): no command applied within ``stale_after_s`` of the start (the
  driver's torque is off, no command source) discards the episode, naming ``ee_command_applied``.
- A stream going stale during an episode discards the episode, naming the stream: an interrupted
  demonstration the operator did not end is not kept (use stop to keep what was done).
- Twin vs hardware: with ``task_state`` in the spec the recorder needs the twin task node (reward,
  terminated and success from ``task_status``; terminated on success only when that node is configured
  to), and as each episode ends (at the stop or discard event, before the commit) it calls
  ``reset_task`` (when the service exists and ``reset_task`` is True), so the next task is drawn
  without an operator; with ``auto_start`` it then starts the next
  episode itself (for a policy-driven actor). On hardware (no ``task_state`` in the spec) reward is 0
  but for the operator's "success", the operator ends each episode, and the recorder waits for the next
  "start".
  ``main`` decides: ``--twin-task`` / ``--no-twin-task``, or by default waits up to 3 s for a
  ``task_state`` publisher (pass the flag explicitly where nodes start in parallel).
- Latency: for every row, each observation stream's age (t - stamp), the task status's age at the
  reward time, and the command's delivery delay (arrival - stamp); p50/p99 per stream go to
  diagnostics (last 1000 rows) and to each episode's info (``latency_ms``), with ``rows``,
  ``ended_by`` and ``command_rate_hz``.
- Crash safety: an episode is committed only at its end (robot_rl.datasets.writer), so a recorder
  killed mid-episode loses that episode only; the next recorder opening the store drops the rows it
  left (``on_tail="drop"``, logged) or keeps them as a truncated, recovered episode (``"salvage"``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from dataclasses import replace

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_rl.datasets import EmbodimentSpec, StoreError, StoreWriter, UncommittedTailError
from robot_rl.drivers.driver_node import EE_ACTION_NAMES
from robot_rl.drivers.streams import (
    TASK_QOS,
    ObservationStreams,
    StaleStreamError,
    StreamBuffer,
    stale_reasons,
)
from robot_rl.drivers.teleop import EPISODE_DISCARD, EPISODE_START, EPISODE_STOP, EPISODE_SUCCESS, TELEOP_QOS
from robot_rl.drivers.twin_task_node import STATUS_NAMES

APPLIED_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
POLL_PERIOD = 0.05         # s: rows are written, events handled and streams checked this often
LATENCY_WINDOW = 1000      # rows of per-stream latency kept for diagnostics
RATE_TOLERANCE = 0.3       # a command stream more than 30% off the control rate refuses a start
PROBLEM_SHOWN_S = 10.0     # diagnostics stay WARN this long after a refusal or a discard
EVENT_CLOCK_TOLERANCE = 5.0  # s: a source timestamp further than this from our clock is not trusted
COMMAND_STREAM = "ee_command_applied"
STATUS_STREAM = "task_status"


class RecorderNode(Node):
    def __init__(self, spec: EmbodimentSpec, out, *, rate_hz: float = 5.0, cameras=(), instruction: str = "",
                 source: str = "teleop", max_episodes: int | None = None, stale_after_s: float = 0.5,
                 node_name: str = "recorder", max_steps: int | None = None, auto_start: bool = False,
                 reset_task: bool = True, on_tail: str = "drop", durable: bool = True, **node_kwargs):
        self._check_arguments(spec, rate_hz, cameras, max_episodes, stale_after_s, max_steps)
        self.spec, self.out = spec, os.fspath(out)
        self.period = 1.0 / float(rate_hz)
        self.instruction, self.source = instruction, source
        self.max_episodes, self.max_steps = max_episodes, max_steps
        self.stale_after_s, self.auto_start, self.reset_task = float(stale_after_s), auto_start, reset_task
        self.twin = "task_state" in spec.state
        self.writer, tail_note = _open_store(self.out, spec, on_tail, durable)  # before the node: a refusal leaves none
        try:
            super().__init__(node_name, **node_kwargs)
        except BaseException:
            self.writer.close()
            raise
        if tail_note:
            self.get_logger().warning(tail_note)
        self.kept, self.discarded, self.refused = 0, 0, 0
        self.last_problem, self._problem_time = "", -np.inf
        self.latency: dict[str, deque[float]] = {}
        self._events: deque[tuple[str, float]] = deque()
        self._episode = None
        self._stop_at: float | None = None
        self._operator_success = False
        self._reset_future = None
        self._create_interfaces()
        kind = "twin (task_state, reward from task_status)" if self.twin else "hardware (no task_state, reward 0)"
        self.get_logger().info(f"recording {self.spec.name} into {self.out} ({self.writer.num_episodes} episodes "
                               f"there): {kind}; streams {self._required_names()}")

    @staticmethod
    def _check_arguments(spec, rate_hz, cameras, max_episodes, stale_after_s, max_steps):
        if not rate_hz > 0 or abs(rate_hz - spec.control_rate_hz) > 1e-9:
            raise ValueError(f"rate_hz: the {spec.name!r} spec's control rate is {spec.control_rate_hz:g} Hz, found "
                             f"{rate_hz}; record at the spec's rate (its actions are deltas per control period)")
        if cameras and set(cameras) != set(spec.cameras):
            raise ValueError(f"cameras: expected the spec's cameras {sorted(spec.cameras)}, found {sorted(cameras)}; "
                             "build the spec with the cameras you record")
        for key, value in (("max_episodes", max_episodes), ("max_steps", max_steps)):
            if value is not None and value < 1:
                raise ValueError(f"{key}: expected at least 1 (or None: no limit), found {value}")
        if not stale_after_s > 0:
            raise ValueError(f"stale_after_s: expected a positive number of seconds, found {stale_after_s}")

    def _create_interfaces(self):
        self.streams = ObservationStreams(self, self.spec, stale_after_s=self.stale_after_s)
        self.commands = StreamBuffer(COMMAND_STREAM, keep_s=30.0, max_samples=2000)
        self.create_subscription(JointState, COMMAND_STREAM, self._on_command, APPLIED_QOS)
        self.status = StreamBuffer(STATUS_STREAM, max_samples=500) if self.twin else None
        if self.twin:
            self.create_subscription(JointState, STATUS_STREAM, self._on_status, TASK_QOS)
        self.create_subscription(String, "episode_control", self._on_episode_control, TELEOP_QOS)
        self.create_service(Trigger, "start_episode", self._on_start_service)
        self.create_service(Trigger, "stop_episode", lambda req, res: self._on_end_service(res, EPISODE_STOP))
        self.create_service(Trigger, "success_episode", lambda req, res: self._on_end_service(res, EPISODE_SUCCESS))
        self.create_service(Trigger, "discard_episode", lambda req, res: self._on_end_service(res, EPISODE_DISCARD))
        self.reset_client = self.create_client(Trigger, "reset_task")
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS)
        self.poll_timer = self.create_timer(POLL_PERIOD, self.advance)
        self.diagnostics_timer = self.create_timer(1.0, self.publish_diagnostics)

    # --- state ----------------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self._episode is not None

    @property
    def done(self) -> bool:
        return self.max_episodes is not None and self.kept >= self.max_episodes

    @property
    def resetting(self) -> bool:
        return self._reset_future is not None and not self._reset_future.done()

    def _buffers(self) -> list[StreamBuffer]:
        return [*self.streams.buffers.values(), self.commands, *([self.status] if self.status else [])]

    def _required_names(self) -> list[str]:
        return [b.name for b in self._buffers()]

    # --- subscriptions and services ---------------------------------------------------------------

    def _on_command(self, msg: JointState):
        if len(msg.position) != len(EE_ACTION_NAMES) or (msg.name and tuple(msg.name) != EE_ACTION_NAMES):
            self.get_logger().warning(f"{COMMAND_STREAM}: expected {EE_ACTION_NAMES}, found names {list(msg.name)} "
                                      f"with {len(msg.position)} values; ignored", throttle_duration_sec=2.0)
            return
        self.commands.add(_seconds(msg), np.asarray(msg.position, dtype=np.float32))

    def _on_status(self, msg: JointState):
        if tuple(msg.name) != STATUS_NAMES:
            self.get_logger().warning(f"{STATUS_STREAM}: expected names {STATUS_NAMES}, found {list(msg.name)}; "
                                      "ignored", throttle_duration_sec=2.0)
            return
        self.status.add(_seconds(msg), np.asarray(msg.position, dtype=float))

    def _on_episode_control(self, msg: String, info):
        if msg.data not in (EPISODE_START, EPISODE_STOP, EPISODE_SUCCESS, EPISODE_DISCARD):
            self.get_logger().warning(f"episode_control: expected start, stop, success or discard, found {msg.data!r}")
            return
        now = time.time()
        sent = info["source_timestamp"] * 1e-9
        self._events.append((msg.data, sent if abs(sent - now) < EVENT_CLOCK_TOLERANCE else now))
        self.advance()

    def _on_start_service(self, request, response):
        response.success, response.message = self.start(time.time())
        return response

    def _on_end_service(self, response, kind: str):
        response.success, response.message = self.end(time.time(), discard=kind == EPISODE_DISCARD,
                                                       success=kind == EPISODE_SUCCESS)
        self.advance()
        return response

    # --- episodes -------------------------------------------------------------------------------

    def start(self, t: float) -> tuple[bool, str]:
        """Open an episode whose rows are the commands applied after ``t``; (success, message)."""
        refusal = self._start_refusal()
        if refusal is not None:
            self.refused += 1
            return self._problem(f"start refused: {refusal}")
        self._episode = self.writer.new_episode(instruction=self.instruction, source=self.source,
                                                recorder=self.get_name(), streams=self._required_names())
        self._stop_at = None
        self._t0, self._cursor, self._pending, self._rows, self._skipped = t, t, None, 0, 0
        self._stamps = [np.inf, -np.inf]  # first and last row's t
        self._ages: dict[str, list[float]] = {}
        self._success = self._operator_success = False
        message = f"episode {self.writer.num_episodes} started"
        self.get_logger().info(message)
        self.publish_diagnostics()
        return True, message

    def _start_refusal(self) -> str | None:
        if self.done:
            return f"{self.kept} episodes kept, the requested {self.max_episodes}"
        if self.recording:
            return "an episode is being recorded" + (" (closing)" if self._stop_at is not None else
                                                     "; stop or discard it first")
        if self.resetting:
            return "the twin task is resetting; start again in a moment"
        # The command stream is checked from the start on instead: a teleop sends its first command with "start".
        stale = stale_reasons([b for b in self._buffers() if b is not self.commands], time.time(), self.stale_after_s)
        if stale:
            return "stale streams: " + "; ".join(f"{name} ({why})" for name, why in stale.items())
        rate = self._command_rate()
        if rate is not None and abs(rate * self.period - 1.0) > RATE_TOLERANCE:
            return (f"{COMMAND_STREAM} arrives at {rate:.1f} Hz, the spec's control rate is {1 / self.period:g} Hz: "
                    "run the command source at the control rate")
        return None

    def _command_rate(self) -> float | None:
        recent = self.commands.after(time.time() - 2.0)
        if len(recent) < 4:
            return None
        return 1.0 / float(np.median(np.diff([s.stamp for s in recent])))

    def end(self, t: float, *, discard: bool, success: bool = False) -> tuple[bool, str]:
        """Stop (keep the rows applied before ``t``; ``success``: the operator says the task was done) or
        discard the episode in progress."""
        if not self.recording or self._stop_at is not None:
            # Not a fault: a teleop's stop after an episode the twin task or max_steps already ended.
            message = f"{'discard' if discard else 'stop'} ignored: " + (
                "the episode is already stopping" if self.recording else "no episode is being recorded")
            self.get_logger().warning(message, throttle_duration_sec=1.0)
            return False, message
        self._request_reset()  # now: the rows before t are in the buffers; the next task must not wait
        if discard:
            return self._discard("discarded by the operator", level="info")
        self._stop_at = t
        self._operator_success = success and not self.twin  # on the twin, its task status decides
        return True, "stopping: the episode is committed once its last commands are in"

    def advance(self) -> None:
        """Handle queued events, write the rows that are complete, end episodes, check the streams."""
        self._handle_events()
        if self.recording:
            self._record(time.time())
        if not self.recording and self.auto_start and not self._events:
            refusal = self._start_refusal()  # retried every poll until the streams are live
            if refusal is None:
                self.start(time.time())
            elif not self.done and not self.resetting:
                self._set_problem(f"auto-start waits: {refusal}")

    def _handle_events(self) -> None:
        while self._events:
            kind, t = self._events[0]
            if kind == EPISODE_START and ((self.recording and self._stop_at is not None) or self.resetting):
                return  # the last episode is closing or the task resetting: start after that
            self._events.popleft()
            if kind == EPISODE_START:
                self.start(t)
            else:
                self.end(t, discard=kind == EPISODE_DISCARD, success=kind == EPISODE_SUCCESS)
            if kind != EPISODE_START and self.recording:
                self._record(time.time())

    def _record(self, now: float) -> None:
        try:
            end = float("inf") if self._stop_at is None else self._stop_at
            for command in self.commands.after(self._cursor, end):
                self._cursor = command.stamp
                if self._rows == 0 and self._pending is None and not self._observed_since_start(command.stamp):
                    self._skipped += 1
                    continue
                if self._pending is not None and not self._write_row(self._pending, command.stamp):
                    return
                self._pending = command
            if self._stop_at is not None:
                if self.commands.after(self._stop_at - 1e-9) or now >= self._stop_at + self.period:
                    if self._pending is None or self._write_row(self._pending, self._stop_at):
                        self._finish("stop")
                return
            stale = self._stale_during_episode(now)
            if stale:
                raise StaleStreamError(stale, self.stale_after_s)
        except StaleStreamError as err:
            self._discard(f"a stream went stale mid-episode: {err}", level="error")
            self._request_reset()
        except StoreError as err:
            self._discard(f"the store refused a row: {err}", level="error")

    def _observed_since_start(self, t: float) -> bool:
        """Every observation stream has a message stamped after the episode's start and at or before t:
        the first row never shows the scene from before a task reset."""
        samples = [b.latest_at(t) for b in self.streams.buffers.values()]
        return all(s is not None and s.stamp > self._t0 for s in samples)

    def _stale_during_episode(self, now: float) -> dict[str, str]:
        stale = stale_reasons([b for b in self._buffers() if b is not self.commands], now, self.stale_after_s)
        last = self.commands.last
        since = max(self._t0, last.stamp if last is not None else self._t0)
        if now - since > self.stale_after_s:
            stale[COMMAND_STREAM] = ("no command applied since the episode started" if since == self._t0 else
                                     f"last message {now - since:.2f} s old") + \
                " (is the driver's torque on and a command source publishing?)"
        return stale

    def _write_row(self, command, reward_time: float) -> bool:
        """Write the row of ``command``; False when it ended the episode."""
        t = command.stamp
        obs, ages = self.streams.observation_at(t)
        ages[COMMAND_STREAM] = command.received - t
        reward, terminated = 0.0, False
        if self.status is not None:
            status = self.status.latest_at(reward_time)
            if status is None or reward_time - status.stamp > self.stale_after_s:
                raise StaleStreamError({STATUS_STREAM: "no status at the row's reward time"}, self.stale_after_s)
            reward, success, _failure, terminated = status.value
            self._success |= bool(success)
            terminated = bool(terminated)
            ages[STATUS_STREAM] = reward_time - status.stamp
        ended_by = "terminated"
        if self._operator_success and reward_time == self._stop_at:  # the last row of a labelled success
            reward, terminated, self._success, ended_by = 1.0, True, True, "success"
        self._episode.add({**obs, "action": command.value, "reward": np.float32(reward), "terminated": terminated,
                           "truncated": False, "timestamp": t})
        self._rows += 1
        self._stamps = [min(self._stamps[0], t), t]
        for name, age in ages.items():
            self._ages.setdefault(name, []).append(age)
            self.latency.setdefault(name, deque(maxlen=LATENCY_WINDOW)).append(age)
        if terminated:
            self._finish(ended_by)
            self._request_reset()
            return False
        if self.max_steps is not None and self._rows >= self.max_steps:
            self._finish("max_steps")
            self._request_reset()
            return False
        return True

    def _finish(self, ended_by: str) -> None:
        episode = self._episode
        if self._rows == 0:
            self._discard(f"ended by {ended_by} before any command was applied", level="warning")
            return
        info = {"ended_by": ended_by, "rows": self._rows, "latency_ms": _percentiles_ms(self._ages),
                "command_rate_hz": self._rows_rate(), "leading_commands_skipped": self._skipped}
        index = episode.commit(success=self._success if self.twin or self._operator_success else None, **info)
        self._episode = None
        self.kept += 1
        self.get_logger().info(f"episode {index} kept: {self._rows} rows, ended by {ended_by}"
                               + (f", success {self._success}" if self.twin or self._operator_success else ""))
        self.publish_diagnostics()

    def _rows_rate(self) -> float | None:
        span = self._stamps[1] - self._stamps[0]
        return round((self._rows - 1) / span, 3) if span > 0 else None

    def _discard(self, reason: str, level: str) -> tuple[bool, str]:
        message = f"episode discarded: {reason}"
        if level != "info":
            self._set_problem(message)
        if self._episode is not None:
            self._episode.discard()
            self._episode = None
        self.discarded += 1
        logger = self.get_logger()
        if level == "info":  # one call site per severity: rclpy refuses a severity change at a call site
            logger.info(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.error(message)
        self.publish_diagnostics()
        return True, message

    def _problem(self, message: str) -> tuple[bool, str]:
        self._set_problem(message)
        self.get_logger().error(message, throttle_duration_sec=1.0)
        self.publish_diagnostics()
        return False, message

    def _set_problem(self, message: str) -> None:
        self.last_problem, self._problem_time = message, time.monotonic()

    def _request_reset(self) -> None:
        """Draw the next twin task (the reset_task service of TwinTaskNode), when there is one."""
        if not self.reset_task or self.resetting or not self.reset_client.service_is_ready():
            return
        self._reset_future = self.reset_client.call_async(Trigger.Request())
        self._reset_future.add_done_callback(self._on_reset_done)

    def _on_reset_done(self, future) -> None:
        try:
            response = future.result()
            ok, message = response.success, response.message
        except Exception as err:  # the service went away
            ok, message = False, str(err)
        if not ok:
            self._problem(f"reset_task failed: {message}")

    # --- diagnostics ----------------------------------------------------------------------------

    def latency_percentiles_ms(self) -> dict[str, dict[str, float]]:
        return _percentiles_ms(self.latency)

    def publish_diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self._status()]
        self.diagnostics_pub.publish(msg)

    def _status(self) -> DiagnosticStatus:
        stale = stale_reasons(self._buffers(), time.time(), self.stale_after_s)
        state = ("recording" if self.recording else "resetting" if self.resetting else "done" if self.done
                 else "idle")
        if stale:
            level, message = DiagnosticStatus.ERROR if self.recording else DiagnosticStatus.WARN, \
                "stale: " + ", ".join(stale)
        elif time.monotonic() - self._problem_time < PROBLEM_SHOWN_S:
            level, message = DiagnosticStatus.WARN, self.last_problem
        else:
            level, message = DiagnosticStatus.OK, state
        values = {"state": state, "store": self.out, "episodes_in_store": self.writer.num_episodes,
                  "episodes_kept": self.kept, "episodes_discarded": self.discarded, "starts_refused": self.refused,
                  "rows_in_episode": self._rows if self.recording else 0, "twin_task": self.twin,
                  "stale_streams": "; ".join(f"{k} ({v})" for k, v in stale.items()),
                  "last_problem": self.last_problem}
        for name, p in self.latency_percentiles_ms().items():
            values[f"latency_{name}_p50_ms"], values[f"latency_{name}_p99_ms"] = p["p50"], p["p99"]
        return DiagnosticStatus(level=level, name=f"{self.get_name()}: recorder", message=message,
                                hardware_id=self.spec.name,
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    def close(self) -> None:
        """Stop the timers and close the store (an episode still open is discarded: never committed)."""
        self.poll_timer.cancel()
        self.diagnostics_timer.cancel()
        self._episode = None
        self.writer.close()


def _open_store(out: str, spec: EmbodimentSpec, on_tail: str, durable: bool) -> tuple[StoreWriter, str]:
    """The writer, and a note when rows a killed recorder left after the last commit were handled."""
    try:
        return StoreWriter.open_or_create(out, spec, durable=durable), ""
    except UncommittedTailError as err:
        if on_tail == "error":
            raise
        writer = StoreWriter.open_or_create(out, spec, durable=durable, on_tail=on_tail)
        action = "dropped" if on_tail == "drop" else "kept as a truncated, recovered episode"
        return writer, f"{out}: the rows of an episode a previous recorder did not commit were {action} ({err})"


def _seconds(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _percentiles_ms(ages) -> dict[str, dict[str, float]]:
    return {name: {"p50": round(float(np.percentile(values, 50)) * 1e3, 2),
                   "p99": round(float(np.percentile(values, 99)) * 1e3, 2)}
            for name, values in ages.items() if len(values)}


# --- command line ---------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.drivers.recorder_node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="widowx", help="the robot whose twin task gives the spec")
    parser.add_argument("--task", default="pick_place", help="the twin task whose embodiment spec is recorded")
    parser.add_argument("--out", required=True, help="the store: appended to if it exists (same spec), else created")
    parser.add_argument("--cameras", nargs="*", default=[], help="camera names (topics <name>/image_raw)")
    parser.add_argument("--rate", type=float, default=None, help="control rate in Hz (default and only: the spec's)")
    parser.add_argument("--episodes", type=int, default=None, help="exit 0 after this many kept episodes")
    parser.add_argument("--max-steps", type=int, default=None, help="rows per episode before it ends truncated")
    parser.add_argument("--instruction", default=None, help="language instruction (default: the task's)")
    parser.add_argument("--source", choices=("teleop", "scripted", "policy", "intervention"), default="teleop")
    parser.add_argument("--twin-task", action=argparse.BooleanOptionalAction, default=None,
                        help="record task_state and reward from a twin task node (default: if one publishes "
                             "task_state within 3 s)")
    parser.add_argument("--reset-task", action=argparse.BooleanOptionalAction, default=True,
                        help="call reset_task after each episode when the service exists")
    parser.add_argument("--auto-start", action="store_true", help="start the next episode without an operator")
    parser.add_argument("--stale-after", type=float, default=0.5, help="seconds without a message: stale stream")
    parser.add_argument("--on-tail", choices=("drop", "salvage", "error"), default="drop",
                        help="rows a killed recorder left after the last commit")
    parser.add_argument("--name", default="recorder", help="the node name")
    args, _ros_args = parser.parse_known_args(argv)
    for key in ("episodes", "max_steps"):
        if getattr(args, key) is not None and getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')}: expected at least 1, found {getattr(args, key)}")
    return args


def task_spec(robot: str, task: str, cameras) -> tuple[EmbodimentSpec, str]:
    """The twin task's embodiment spec with ``cameras``, and its instruction."""
    from robot_rl.sim import make_env

    env = make_env(robot, task, cameras=tuple(cameras))
    try:
        return env.unwrapped.embodiment, env.unwrapped.instruction
    finally:
        env.close()


def without_task_state(spec: EmbodimentSpec) -> EmbodimentSpec:
    return replace(spec, state={k: v for k, v in spec.state.items() if k != "task_state"})


def detect_twin_task(context=None, timeout: float = 3.0) -> bool:
    """Whether a node publishes ``task_state`` in this namespace within ``timeout`` seconds."""
    import rclpy

    probe = rclpy.create_node("recorder_probe", context=context)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe.count_publishers("task_state") > 0:
                return True
            time.sleep(0.1)
        return False
    finally:
        probe.destroy_node()


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # before rclpy reads it
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    spec, instruction = task_spec(args.robot, args.task, args.cameras)
    rclpy.init(args=["recorder", *argv])
    node = None
    try:
        twin = detect_twin_task() if args.twin_task is None else args.twin_task
        if not twin:
            spec = without_task_state(spec)
        node = RecorderNode(spec, args.out, rate_hz=args.rate or spec.control_rate_hz, cameras=args.cameras,
                            instruction=instruction if args.instruction is None else args.instruction,
                            source=args.source, max_episodes=args.episodes, stale_after_s=args.stale_after,
                            node_name=args.name, max_steps=args.max_steps, auto_start=args.auto_start,
                            reset_task=args.reset_task, on_tail=args.on_tail)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not node.done:
            executor.spin_once(timeout_sec=0.1)
        print(f"recorder: {node.kept} episodes kept, {node.discarded} discarded, into {args.out}")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (StoreError, ValueError) as err:
        raise SystemExit(f"recorder: {err}") from None
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
