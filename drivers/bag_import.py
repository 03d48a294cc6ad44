"""A rosbag2 recording of the driver topics, imported onto the control grid the way the recorder node
builds its rows, with the same code: ``ObservationStreams`` (robot_rl.drivers.streams) buffers each
observation topic and answers "each stream's newest message stamped at or before t" (joint states through
the robot's forward kinematics, images cropped and resized to the spec), ``StreamBuffer`` holds the applied
commands and the task status. Pure Python: the bag is read and its CDR decoded with ``rosbags`` (MCAP or
SQLite storage), no ROS install needed at import time.

    import_bag("teleop_bag/", "data/teleop.zarr")     # spec: the store's, the bag's robot_rl/spec, or spec_from

The rules are the recorder's (robot_rl.drivers.recorder_node): one row per ``ee_command_applied`` message
at its stamp t; ``episode_control`` "start" at t0 opens an episode whose rows are the commands after t0,
from the first one by which every observation stream has a message stamped after t0; "stop" (or
"success") at ts keeps the commands before ts and commits the episode truncated; "discard" drops it;
the reward and ``terminated`` of a row come from the newest ``task_status`` stamped at or before the
next row's t (or the stop), and a terminated status ends the episode. A stream with no message within
``stale_after_s`` of a row discards the episode, as the recorder does. A bag without episode events is
one episode from its first command. Besides the driver topics, a state key may come on a topic of its own
name (a vector as sensor_msgs/JointState positions), as ``robot-rl data export --format mcap`` writes it.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot_rl.datasets.errors import SpecMismatchError, StoreError
from robot_rl.datasets.formats.common import require, staged_import
from robot_rl.datasets.formats.mcap import (
    COMMAND_TOPIC,
    EVENT_TOPIC,
    INFO_TOPIC,
    SPEC_TOPIC,
    STATUS_NAMES,
    STATUS_TOPIC,
    state_topic,
    typestore,
)
from robot_rl.datasets.layout import store_exists
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.drivers.streams import ObservationStreams, StaleStreamError, StreamBuffer, header_seconds

LAG_S = 1.0  # rows are built once the bag is this far past them: every message stamped before has been read
JOINT_STATES_TOPIC = "joint_states"


@dataclass
class BagReport:
    kept: int = 0
    discarded: list[str] = field(default_factory=list)  # why each discarded episode was dropped
    skipped_commands: int = 0


class _Subscriptions:
    """Stands in for the rclpy node ``ObservationStreams`` subscribes on: it keeps each topic's
    callback, and the bag reader calls it with each decoded message."""

    def __init__(self):
        self.callbacks: dict[str, Callable] = {}

    def create_subscription(self, msg_type, topic, callback, qos):
        self.callbacks[topic] = callback


def import_bag(bag, dst, *, spec_from=None, overwrite: bool = False, source: str = "teleop", instruction: str = "",
               stale_after_s: float = 0.5, progress: Callable[[int, int], None] | None = None) -> BagReport:
    """Import the episodes of the rosbag2 folder ``bag`` into the store ``dst`` (created, or appended to when
    it holds the same spec). The spec is the bag's ``robot_rl/spec`` if it has one, else ``dst``'s when it
    exists, else the spec of the store ``spec_from``."""
    rosbag2 = require("rosbags.rosbag2", "rosbags")
    try:
        reader = rosbag2.Reader(os.fspath(bag))
        reader.open()
    except Exception as e:  # rosbags raises its own errors and the storage's
        raise StoreError(f"{bag}: not a readable rosbag2 recording ({type(e).__name__}: {e}); "
                         "check the path; if it is a partial copy, copy it again") from e
    try:
        store = typestore()
        topics = {c.topic: c for c in reader.connections}
        spec = _spec(reader, store, topics, dst, spec_from, overwrite, bag)
        if COMMAND_TOPIC not in topics:
            raise SpecMismatchError(f"{bag}: no {COMMAND_TOPIC} topic: the rows of an episode are the applied "
                                    f"commands; the bag has {sorted(topics)}")
        aligner = _Aligner(spec, topics, stale_after_s, bag)
        wanted = [c for c in reader.connections if c.topic in aligner.topics]
        total = sum(c.msgcount for c in wanted if c.topic == COMMAND_TOPIC)
        with staged_import(dst, spec, overwrite=overwrite) as writer:
            aligner.start_writing(writer, source, instruction, progress, total)
            for topic, msg, log_time in _decoded(reader, store, wanted, bag):
                try:
                    aligner.feed(topic, msg, log_time)
                except StoreError:
                    raise
                except ValueError as e:  # a message that does not fit the spec (joint names, sizes)
                    raise SpecMismatchError(f"{bag}: {topic}: {e}") from e
            aligner.finish()
        return aligner.report
    finally:
        reader.close()


def _decoded(reader, store, connections, bag):
    """(topic, message, log time in s) in log-time order; a message that does not read is a damaged bag."""
    messages = reader.messages(connections=connections)
    while True:
        try:
            item = next(messages, None)
            if item is None:
                return
            connection, log_ns, raw = item
            msg = store.deserialize_cdr(raw, connection.msgtype)
        except Exception as e:  # rosbags' and the storage's own errors share no base class
            raise StoreError(f"{bag}: a message does not read ({type(e).__name__}: {e}); the recording is "
                             "truncated or damaged: fetch or copy it again") from e
        yield connection.topic, msg, log_ns * 1e-9


def _spec(reader, store, topics, dst, spec_from, overwrite, bag) -> EmbodimentSpec:
    if SPEC_TOPIC in topics:
        for _, _, raw in reader.messages(connections=[topics[SPEC_TOPIC]]):
            return EmbodimentSpec.from_dict(json.loads(store.deserialize_cdr(raw, topics[SPEC_TOPIC].msgtype).data))
    if store_exists(dst) and not overwrite:
        return TrajectoryReader(dst).spec
    if spec_from is not None:
        return TrajectoryReader(spec_from).spec
    raise SpecMismatchError(f"{bag}: the bag carries no embodiment spec ({SPEC_TOPIC}) and {dst} does not exist: "
                            "pass --spec-from STORE (a store recorded with the same robot and cameras)")


class _Aligner:
    def __init__(self, spec: EmbodimentSpec, topics: dict, stale_after_s: float, bag):
        self.spec, self.stale_after_s, self.bag = spec, stale_after_s, bag
        self.report = BagReport()
        driver_keys, self.raw = [], {}
        for key in spec.obs_keys:
            if key in spec.cameras or key == "task_state" or (key == "state" and JOINT_STATES_TOPIC in topics):
                driver_keys.append(key)
            else:
                self.raw[key] = StreamBuffer(state_topic(key), max_samples=4000)
        self.subscriptions = _Subscriptions()
        self.streams = ObservationStreams(self.subscriptions, spec, driver_keys, stale_after_s=stale_after_s)
        for buffer in self.streams.buffers.values():  # offline: a few seconds of every stream, whatever its rate
            buffer.max_samples = max(buffer.max_samples, 4000)
        self.commands = StreamBuffer(COMMAND_TOPIC, keep_s=30.0, max_samples=20000)
        self.status = StreamBuffer(STATUS_TOPIC, max_samples=4000)
        self.topics = {*self.subscriptions.callbacks, *(b.name for b in self.raw.values()), COMMAND_TOPIC,
                       STATUS_TOPIC, EVENT_TOPIC, INFO_TOPIC}
        missing = sorted(t for t in self.topics - {STATUS_TOPIC, EVENT_TOPIC, INFO_TOPIC} if t not in topics)
        if missing:
            raise SpecMismatchError(f"{bag}: the spec {spec.name!r} needs topics {missing}, which the bag does not "
                                    f"have (it has {sorted(topics)}); record them, or import with another spec")
        self._done_until = -np.inf
        # Without episode events the bag is one episode, from its first command.
        self.events: list[tuple[float, str]] = [] if EVENT_TOPIC in topics else [(-1e18, "start")]
        self.infos: list[tuple[float, dict]] = []
        self._episode = None

    def start_writing(self, writer, source, instruction, progress, total):
        self.writer, self.source, self.instruction = writer, source, instruction
        self.progress, self.total, self.rows_done = progress, total, 0

    # --- the bag's messages, in log-time order ------------------------------------------------------
    def feed(self, topic: str, msg, now: float) -> None:
        if topic == COMMAND_TOPIC:
            if len(msg.position) != self.spec.action.shape[0]:
                raise SpecMismatchError(f"{self.bag}: {COMMAND_TOPIC} has {len(msg.position)} values, the spec's "
                                        f"action has shape {self.spec.action.shape}")
            self.commands.add(header_seconds(msg), np.asarray(msg.position, np.float64), received=now)
        elif topic == STATUS_TOPIC:
            self.status.add(header_seconds(msg), np.asarray(msg.position, float), received=now)
        elif topic == EVENT_TOPIC:
            self.events.append((now, msg.data))
        elif topic == INFO_TOPIC:
            self.infos.append((now, json.loads(msg.data)))
        elif topic in self.subscriptions.callbacks:
            self.subscriptions.callbacks[topic](msg)
        else:
            key = next(k for k, b in self.raw.items() if b.name == topic)
            self.raw[key].add(header_seconds(msg), np.asarray(msg.position), received=now)
        self._advance(now - LAG_S)

    def finish(self) -> None:
        self._advance(np.inf)
        if self._episode is not None:  # the bag ends mid-episode: keep what was recorded, as a stop would
            self._end(self._last_time, "bag_end")

    # --- the recorder's rules ---------------------------------------------------------------------
    def _advance(self, until: float) -> None:
        """Handle the events and commands up to ``until`` in time order (an event before a command at the
        same time: a start opens before, a stop closes before, the command stamped with it)."""
        items = [(t, 0, kind) for t, kind in self.events if self._done_until < t <= until]
        items += [(c.stamp, 1, c) for c in self.commands.after(self._done_until, until + 1e-12) if c.stamp <= until]
        for t, _, item in sorted(items, key=lambda x: (x[0], x[1])):
            self._last_time = t
            if isinstance(item, str):
                self._event(item, t)
            else:
                self._command(item)
        self.events = [(t, k) for t, k in self.events if t > until]
        self._done_until = max(self._done_until, until)

    def _event(self, kind: str, t: float) -> None:
        if kind == "start":
            if self._episode is not None:
                return  # the recorder refuses a start during an episode
            info = next((i for s, i in reversed(self.infos) if s <= t), None)
            self.infos = [(s, i) for s, i in self.infos if s > t]
            self._from_info = info is not None
            if info is not None:  # exported by this package: the episode's own info and success label
                info = dict(info)
                success = info.pop("success", None)
            else:
                info, success = {"instruction": self.instruction, "source": self.source}, None
            self._episode = self.writer.new_episode(**info)
            self._stored_success = success
            self._t0, self._pending, self._rows, self._success = t, None, 0, False
        elif self._episode is not None:
            if kind == "discard":
                self._drop("discarded by the operator")
            elif kind in ("stop", "success"):
                self._end(t, "success" if kind == "success" else "stop")

    def _command(self, command) -> None:
        if self._episode is None:
            return
        if self._rows == 0 and self._pending is None and not self._observed_since_start(command.stamp):
            self.report.skipped_commands += 1
            return
        if self._pending is not None:
            self._write_row(self._pending, command.stamp)
        if self._episode is not None:
            self._pending = command

    def _observed_since_start(self, t: float) -> bool:
        buffers = [*self.streams.buffers.values(), *self.raw.values()]
        samples = [b.latest_at(t) for b in buffers]
        return all(s is not None and s.stamp > self._t0 for s in samples)

    def _observation(self, t: float) -> dict:
        obs, _ = self.streams.observation_at(t) if self.streams.buffers else ({}, {})
        stale = {}
        for key, buffer in self.raw.items():
            sample = buffer.latest_at(t)
            if sample is None or t - sample.stamp > self.stale_after_s:
                stale[buffer.name] = "no message within the staleness limit before the row"
            else:
                obs[key] = sample.value.astype(self.spec.state[key].dtype)
        if stale:
            raise StaleStreamError(stale, self.stale_after_s)
        return obs

    def _write_row(self, command, reward_time: float) -> None:
        t = command.stamp
        try:
            obs = self._observation(t)
        except StaleStreamError as err:
            self._drop(f"a stream went stale mid-episode: {err}")
            return
        reward, terminated = 0.0, False
        status = self.status.latest_at(reward_time)
        if status is not None and reward_time - status.stamp <= self.stale_after_s:
            values = dict(zip(STATUS_NAMES, status.value))
            reward, terminated = values["reward"], bool(values["terminated"])
            self._success |= bool(values["success"])
        self._episode.add({**obs, "action": command.value.astype(self.spec.action.dtype), "reward": np.float32(reward), "terminated": terminated,
                           "truncated": False, "timestamp": t})
        self._rows += 1
        self.rows_done += 1
        if self.progress:
            self.progress(self.rows_done, self.total)
        if terminated:
            self._commit("terminated")

    def _end(self, t: float, ended_by: str) -> None:
        if self._pending is not None:
            self._write_row(self._pending, t)
            self._pending = None
        if self._episode is not None:
            if ended_by == "success":
                self._success = True
            self._commit(ended_by)

    def _commit(self, ended_by: str) -> None:
        if self._rows == 0:
            self._drop(f"ended by {ended_by} before any command was applied")
            return
        if self._from_info:
            self._episode.commit(success=self._stored_success)
        else:
            self._episode.commit(success=self._success or None, ended_by=ended_by)
        self._episode = None
        self.report.kept += 1

    def _drop(self, reason: str) -> None:
        self._episode.discard()
        self._episode = None
        self.report.discarded.append(reason)
