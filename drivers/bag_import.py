"""A rosbag2 recording of the driver topics, imported into a store by the recorder's own core: the bag's
messages are fed, in log-time order, to ``EpisodeRecorder`` (robot_rl.drivers.episode_recorder), whose
clock is the bag's time, through the same ``ObservationStreams`` the recorder node subscribes with (joint
states through the robot's forward kinematics, images cropped and resized to the spec). So rows land on
the applied-command grid exactly as the live recorder would have written them: one row per
``ee_command_applied`` message, each observation stream's newest message stamped at or before the row,
episodes cut by ``episode_control`` events, stale streams discarding the episode, refused starts refused.
Pure Python: the bag is read and its CDR decoded with ``rosbags`` (MCAP or SQLite storage).

    import_bag("teleop_bag/", "data/teleop.zarr")   # spec: the bag's robot_rl/spec, the store's, or spec_from

Beyond the live recorder: a bag with ``task_status`` gives every row its reward and termination from it,
whatever the spec (the recorder does so on the twin; a hardware spec otherwise records reward 0); a state
key may come on a topic of its own name (the vector as JointState positions); a bag without episode events
is one episode, from its first command to its end; and episodes exported by this package
(``robot_rl/episode_info``) keep their own info. Actions must be the driver's 7-D commands.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot_rl.datasets.errors import SpecMismatchError, StoreError
from robot_rl.datasets.formats.common import episode_kwargs, require, staged_import
from robot_rl.datasets.formats.mcap import (
    COMMAND_TOPIC,
    EVENT_TOPIC,
    INFO_TOPIC,
    SPEC_TOPIC,
    STATUS_TOPIC,
    state_topic,
    typestore,
)
from robot_rl.datasets.layout import store_exists
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.drivers.episode_recorder import EPISODE_EVENTS, EpisodeRecorder
from robot_rl.drivers.stamped import AlignedStreams, StreamBuffer
from robot_rl.drivers.streams import ObservationStreams, header_seconds

LAG_S = 1.0  # the recorder's clock runs this far behind the bag: every message stamped before it is in
JOINT_STATES_TOPIC = "joint_states"


@dataclass
class BagReport:
    kept: int = 0
    discarded: list[str] = field(default_factory=list)  # the recorder's reason for each episode it dropped
    refused: list[str] = field(default_factory=list)    # starts the recorder refused, with the reason


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
        feed = _BagFeed(spec, topics, stale_after_s, bag)
        wanted = [c for c in reader.connections if c.topic in feed.topics]
        total = sum(c.msgcount for c in wanted if c.topic == COMMAND_TOPIC)
        with staged_import(dst, spec, overwrite=overwrite) as writer:
            feed.start(writer, source, instruction, progress, total)
            for topic, msg, log_time in _decoded(reader, store, wanted, bag):
                try:
                    feed.add(topic, msg, log_time)
                except StoreError:
                    raise
                except ValueError as e:  # a message that does not fit the spec (joint names, sizes)
                    raise SpecMismatchError(f"{bag}: {topic}: {e}") from e
            feed.finish()
        return feed.report
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


class _Subscriptions:
    """Stands in for the rclpy node that ``ObservationStreams`` subscribes on: it keeps each topic's
    callback, and the bag feed calls it with each decoded message."""

    def __init__(self):
        self.callbacks: dict[str, Callable] = {}

    def create_subscription(self, msg_type, topic, callback, qos):
        self.callbacks[topic] = callback


class _BagFeed:
    """The bag's messages into an ``EpisodeRecorder`` whose clock runs ``LAG_S`` behind the bag: observation
    and status messages go in as they are read; commands and episode events are handed over once the clock
    reaches their time, so every message stamped up to a second after them is already in (a recorder whose
    messages all arrived without delay)."""

    def __init__(self, spec: EmbodimentSpec, topics: dict, stale_after_s: float, bag):
        self.spec, self.bag = spec, bag
        if COMMAND_TOPIC not in topics:
            raise SpecMismatchError(f"{bag}: no {COMMAND_TOPIC} topic: the rows of an episode are the applied "
                                    f"commands; the bag has {sorted(topics)}")
        driver_keys = [k for k in spec.obs_keys if k in spec.cameras or k == "task_state"
                       or (k == "state" and JOINT_STATES_TOPIC in topics)]
        self.subscriptions = _Subscriptions()
        self.streams = ObservationStreams(self.subscriptions, spec, driver_keys, stale_after_s=stale_after_s)
        self.raw = {k: StreamBuffer(state_topic(k), max_samples=4000) for k in spec.obs_keys if k not in driver_keys}
        for buffer in self.streams.buffers.values():  # a second of every stream ahead of the clock, whatever its rate
            buffer.max_samples = max(buffer.max_samples, 4000)
        decode = self.streams.decode  # the recorder node's decoding: proprio FK, images fitted to the spec
        self.observations = AlignedStreams({**self.streams.buffers, **self.raw}, stale_after_s=stale_after_s,
                                           decode=lambda key, value: value if key in self.raw else decode(key, value))
        self.topics = {*self.subscriptions.callbacks, *(b.name for b in self.raw.values()), COMMAND_TOPIC,
                       STATUS_TOPIC, EVENT_TOPIC, INFO_TOPIC}
        missing = sorted(t for t in self.topics - {STATUS_TOPIC, EVENT_TOPIC, INFO_TOPIC} if t not in topics)
        if missing:
            raise SpecMismatchError(f"{bag}: the spec {spec.name!r} needs topics {missing}, which the bag does not "
                                    f"have (it has {sorted(topics)}); record them, or import with another spec")
        self.has_events, self.has_status = EVENT_TOPIC in topics, STATUS_TOPIC in topics
        self.report = BagReport()
        self.now = -math.inf
        self.queue: list[tuple[float, int, object]] = []  # (time, 0 event / 1 command, what): events first at a tie
        self.infos: list[tuple[float, dict]] = []
        self.last_command: float | None = None

    def start(self, writer, source: str, instruction: str, progress, total: int) -> None:
        self.writer = _KeepExportedInfo(writer)
        self.recorder = EpisodeRecorder(self.spec, self.writer, self.observations, instruction=instruction,
                                        source=source, recorder="bag_import", log=self._log, clock=lambda: self.now,
                                        rewards_from_status=self.has_status or None)  # a bag with them keeps them
        self.progress, self.total, self.done = progress, total, 0

    def _log(self, level: str, message: str) -> None:
        if message.startswith("episode discarded"):
            self.report.discarded.append(message)
        elif message.startswith("start refused"):
            self.report.refused.append(message)

    def add(self, topic: str, msg, log_time: float) -> None:
        if not self.has_events and self.now == -math.inf and not self.queue:  # no events: one episode from the start
            self.queue.append((log_time - 1e-6, 0, "start"))
        if topic == COMMAND_TOPIC:
            stamp = header_seconds(msg)
            if len(msg.position) != self.spec.action.shape[0]:
                raise ValueError(f"expected {self.spec.action.shape[0]} values (the spec's action), found "
                                 f"{len(msg.position)}")
            self.queue.append((stamp, 1, (stamp, np.array(msg.position), log_time)))
            self.last_command = stamp if self.last_command is None else max(self.last_command, stamp)
        elif topic == STATUS_TOPIC:
            self.recorder.add_status(header_seconds(msg), msg.position, received=log_time)
        elif topic == EVENT_TOPIC:
            if msg.data in EPISODE_EVENTS:
                self.queue.append((log_time, 0, msg.data))
        elif topic == INFO_TOPIC:
            self.infos.append((log_time, json.loads(msg.data)))
        elif topic in self.subscriptions.callbacks:
            self.subscriptions.callbacks[topic](msg)
        else:
            key = next(k for k, b in self.raw.items() if b.name == topic)
            self.raw[key].add(header_seconds(msg), np.asarray(msg.position).astype(self.spec.state[key].dtype),
                              received=log_time)
        self._advance(log_time - LAG_S)

    def finish(self) -> None:
        if not self.has_events and self.last_command is not None:  # ...to the last command
            self.queue.append((self.last_command + 1e-6, 0, "stop"))
        self._advance(math.inf)
        self.report.kept = self.recorder.kept

    def _advance(self, now: float) -> None:
        """Move the recorder's clock to ``now``, handing it each command and event as the clock passes it."""
        self.queue.sort(key=lambda item: item[:2])
        while self.queue and self.queue[0][0] <= now:
            t, _, item = self.queue.pop(0)
            self.now = max(self.now, t)
            if isinstance(item, str):
                if item == "start":
                    info = next((i for s, i in reversed(self.infos) if s <= t), None)
                    self.infos = [(s, i) for s, i in self.infos if s > t]
                    self.writer.next_info = info
                self.recorder.event(item, t)
            else:
                self.recorder.add_command(*item)
                self.recorder.advance()
                self.done += 1
                if self.progress:
                    self.progress(self.done, self.total)
        self.now = max(self.now, now)
        self.recorder.advance()


class _KeepExportedInfo:
    """The store writer as the recorder sees it: an episode exported by this package (its info read from
    the bag) is opened with that info and committed with its own success label, in place of the
    recorder's; any other episode is the recorder's."""

    def __init__(self, writer):
        self._writer = writer
        self.next_info: dict | None = None

    def __getattr__(self, name):
        return getattr(self._writer, name)

    def new_episode(self, **info):
        if self.next_info is None:
            return self._writer.new_episode(**info)
        exported, success = episode_kwargs(self.next_info)
        self.next_info = None
        return _ExportedEpisode(self._writer.new_episode(**exported), success)


class _ExportedEpisode:
    def __init__(self, episode, success):
        self._episode, self._success = episode, success

    def __getattr__(self, name):
        return getattr(self._episode, name)

    def commit(self, *, success=None, **recorder_info):
        return self._episode.commit(success=self._success)
