"""Episodes as a rosbag2 MCAP recording on this project's driver topics, to open in Foxglove or replay
with ``ros2 bag play``; ``robot_rl.drivers.bag_import`` reads such a bag (or one recorded from the real
driver topics) back onto the control grid. Written with ``rosbags`` (pure Python CDR, no ROS install).

| topic                 | type                    | what                                                          |
|-----------------------|-------------------------|---------------------------------------------------------------|
| `ee_command_applied`  | sensor_msgs/JointState  | the action, stamped at the row's time t (the control grid)    |
| `<camera>/image_raw`  | sensor_msgs/Image rgb8  | the row's frame, stamped t                                    |
| `state`, `<key>`      | sensor_msgs/JointState  | each state key's vector (``task_state`` as the twin sends it) |
| `task_status`         | sensor_msgs/JointState  | reward, success, failure, terminated of the row, stamped at   |
|                       |                         | the next row's t (at t + 1/rate for the last row)             |
| `episode_control`     | std_msgs/String         | ``start`` half a period before the first row, ``stop`` a      |
|                       |                         | period after the last                                         |
| `robot_rl/spec`       | std_msgs/String         | the embodiment spec (JSON), once                              |
| `robot_rl/episode_info` | std_msgs/String       | each episode's info (JSON), at its start                      |

Every message's log time is its stamp. Stamps are integer nanoseconds, so a round trip keeps
timestamps to the nanosecond (bit-exact for wall-clock stamps, where float64 is coarser than 1 ns); every
other key comes back bit-exact. Importing needs the driver's 7-D actions (the recorder's command layout),
and a bag is one time line: episodes come back in time order.
"""
from __future__ import annotations

import json

import numpy as np

from robot_rl.datasets.errors import StoreError
from robot_rl.datasets.formats.common import Progress, episode_blocks, require, staged_output
from robot_rl.datasets.reader import TrajectoryReader

COMMAND_TOPIC = "ee_command_applied"
STATUS_TOPIC = "task_status"
EVENT_TOPIC = "episode_control"
SPEC_TOPIC = "robot_rl/spec"
INFO_TOPIC = "robot_rl/episode_info"
STATUS_NAMES = ("reward", "success", "failure", "terminated")  # the twin task node's task_status layout
JOINT_STATE, IMAGE, STRING = "sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "std_msgs/msg/String"


def camera_topic(name: str) -> str:
    return f"{name}/image_raw"


def state_topic(key: str) -> str:
    return key


def typestore():
    typesys = require("rosbags.typesys", "rosbags")
    return typesys.get_typestore(typesys.Stores.ROS2_KILTED)


def to_nanoseconds(t: float) -> int:
    seconds = int(np.floor(t))
    return seconds * 1_000_000_000 + round((t - seconds) * 1e9)


def export_mcap(src, out, *, episodes: list[int] | None = None, overwrite: bool = False,
                progress: Progress | None = None) -> int:
    """Write committed episodes of the store ``src`` (all, or the indices ``episodes``) into one rosbag2
    folder ``out`` with MCAP storage. Returns the number of episodes written."""
    rosbag2 = require("rosbags.rosbag2", "rosbags")
    reader = TrajectoryReader(src)
    spec = reader.spec
    chosen = list(range(reader.num_episodes)) if episodes is None else list(episodes)
    bad = [i for i in chosen if not 0 <= i < reader.num_episodes]
    if bad:
        raise StoreError(f"episodes {bad}: the store has episodes 0..{reader.num_episodes - 1}; pick among those")
    store = typestore()
    types = store.types
    period = 1.0 / spec.control_rate_hz
    total = sum(int(np.diff(np.concatenate([[0], reader.episode_ends]))[i]) for i in chosen)
    done = 0
    with staged_output(out, overwrite) as tmp:
        with rosbag2.Writer(tmp, version=9, storage_plugin=rosbag2.StoragePlugin.MCAP) as bag:
            def connect(topic, msgtype):
                return bag.add_connection(topic, msgtype, typestore=store)

            commands, status = connect(COMMAND_TOPIC, JOINT_STATE), connect(STATUS_TOPIC, JOINT_STATE)
            events, spec_c, info_c = connect(EVENT_TOPIC, STRING), connect(SPEC_TOPIC, STRING), connect(INFO_TOPIC, STRING)
            cameras = {name: connect(camera_topic(name), IMAGE) for name in spec.cameras}
            states = {key: connect(state_topic(key), JOINT_STATE) for key in spec.state}

            def write(connection, t: float, msg, msgtype: str) -> None:
                bag.write(connection, to_nanoseconds(t), store.serialize_cdr(msg, msgtype))

            def header(t: float, frame_id: str = ""):
                ns = to_nanoseconds(t)
                return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
                    sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=frame_id)

            def joint_state(t: float, values, names=()):
                return types[JOINT_STATE](header=header(t), name=list(names),
                                          position=np.asarray(values, np.float64).reshape(-1),
                                          velocity=np.zeros(0), effort=np.zeros(0))

            def text(value: str):
                return types[STRING](data=value)

            first_t = None
            for index in chosen:
                info = reader.episode_info(index)
                previous = None  # (t, reward, terminated) of the row whose status waits for the next t
                for block in episode_blocks(reader, index):
                    stamps = block["timestamp"]
                    if previous is None:
                        start = float(stamps[0]) - period / 2
                        first_t = start if first_t is None else first_t
                        if index == chosen[0]:
                            write(spec_c, start, text(json.dumps(spec.to_dict())), STRING)
                        write(info_c, start, text(json.dumps(info)), STRING)
                        write(events, start, text("start"), STRING)
                    for row, t in enumerate(stamps.tolist()):
                        if previous is not None:
                            write(status, t, joint_state(t, previous, STATUS_NAMES), JOINT_STATE)
                        for key, connection in states.items():
                            write(connection, t, joint_state(t, block[key][row]), JOINT_STATE)
                        for name, connection in cameras.items():
                            frame = block[name][row]
                            msg = types[IMAGE](header=header(t, name), height=frame.shape[0], width=frame.shape[1],
                                               encoding="rgb8", is_bigendian=0, step=3 * frame.shape[1],
                                               data=np.ascontiguousarray(frame).reshape(-1))
                            write(connection, t, msg, IMAGE)
                        write(commands, t, joint_state(t, block["action"][row]), JOINT_STATE)
                        terminated = bool(block["terminated"][row])
                        previous = [float(block["reward"][row]), 0.0, 0.0, float(terminated)]
                    done += len(stamps)
                    if progress:
                        progress(done, total)
                end = float(stamps[-1]) + period
                previous[1] = float(bool(info.get("success")))
                write(status, end, joint_state(end, previous, STATUS_NAMES), JOINT_STATE)
                write(events, end, text("stop"), STRING)
    return len(chosen)
