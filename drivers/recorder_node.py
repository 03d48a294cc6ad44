"""The recorder node: state, cameras and the commands the driver actually applied, aligned by stamp and
written as episodes into the trajectory store, with the embodiment spec. What it records and when (the
episode state machine, row alignment, refusals, latency) is robot_rl.drivers.episode_recorder; this node
turns messages, services and timers into calls of that core.

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
| `episode_control`    | subscr. | std_msgs/String: start, stop, success, discard, failure | event (teleop) | reliable, volatile, last 10 |
| `intervention`       | subscr. | std_msgs/Bool (``--interventions``)   | the teleop's tick     | reliable, volatile, last 10  |
| `diagnostics`        | publish | diagnostic_msgs/DiagnosticArray       | 1 Hz, at once on news | reliable, volatile, last 10  |
| `start_episode`      | service | std_srvs/Trigger                      | -                     | services default             |
| `stop_episode`       | service | std_srvs/Trigger                      | -                     | services default             |
| `success_episode`    | service | std_srvs/Trigger                      | -                     | services default             |
| `discard_episode`    | service | std_srvs/Trigger                      | -                     | services default             |
| `reset_task`         | client  | std_srvs/Trigger (twin only)          | after each episode    | services default             |

- An episode_control event is timed by the publisher's source timestamp (so a recorder busy committing
  still cuts at the right command); a service call by its arrival.
- Twin vs hardware: ``main`` decides, ``--twin-task`` / ``--no-twin-task``, or by default waits up to
  3 s for a ``task_state`` publisher (pass the flag explicitly where nodes start in parallel). On the
  twin the node calls ``reset_task`` as each episode ends (when the service exists and ``reset_task``).
- ``--interventions``: the store gets the per-step ``intervention`` key (robot_rl.drivers.takeover),
  timed, as episode_control, by each message's source timestamp.
- ``--reward-classifier PATH`` (hardware): a trained reward classifier (robot_rl.learner.reward_classifier)
  labels rows as successes at ``--reward-threshold``; the operator's success and failure labels override it.
- ``--episodes 0`` (the default): record until Ctrl-C. Ctrl-C or SIGTERM ends the process with status 0
  after the callback in progress: the episode still open is discarded, committed ones stay.
"""
from __future__ import annotations

import argparse
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from robot_rl.datasets import EmbodimentSpec, StoreError
from robot_rl.drivers.driver_node import EE_ACTION_NAMES
from robot_rl.drivers.episode_recorder import (
    COMMAND_STREAM,
    EPISODE_EVENTS,
    INTERVENTION_STREAM,
    STATUS_STREAM,
    EpisodeRecorder,
    check_settings,
    open_store,
)
from robot_rl.drivers.robot import default_task
from robot_rl.drivers.spinning import spin_until, stop_on_signals, stop_requested
from robot_rl.drivers.streams import TASK_QOS, ObservationStreams, header_seconds
from robot_rl.drivers.teleop import TELEOP_QOS
from robot_rl.drivers.twin_task_node import STATUS_NAMES
from robot_rl.sim.specs import embodiment_spec, robot_spec_module, task_facts

APPLIED_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
POLL_PERIOD = 0.05         # s: rows are written, events handled and streams checked this often
EVENT_CLOCK_TOLERANCE = 5.0  # s: a source timestamp further than this from our clock is not trusted
LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}


class RecorderNode(Node):
    def __init__(self, spec: EmbodimentSpec, out, *, rate_hz: float = 5.0, cameras=(), instruction: str = "",
                 source: str = "teleop", max_episodes: int | None = None, stale_after_s: float = 0.5,
                 node_name: str = "recorder", max_steps: int | None = None, auto_start: bool = False,
                 reset_task: bool = True, on_tail: str = "drop", durable: bool = True, reward_fn=None,
                 reward_threshold: float = 0.5, **node_kwargs):
        check_settings(spec, rate_hz=rate_hz, cameras=cameras, max_episodes=max_episodes, max_steps=max_steps,
                       stale_after_s=stale_after_s)
        writer, tail_note = open_store(out, spec, on_tail, durable)  # before the node: a refusal leaves none
        try:
            super().__init__(node_name, **node_kwargs)
        except BaseException:
            writer.close()
            raise
        if tail_note:
            self.get_logger().warning(tail_note)
        self.reset_task, self._reset_future = reset_task, None
        # The action's names: the robot spec's ACTION_NAMES (the car's steering, throttle), else the arms' 7-D.
        self.action_names = tuple(getattr(robot_spec_module(spec.name), "ACTION_NAMES", EE_ACTION_NAMES))
        self.core = EpisodeRecorder(
            spec, writer, ObservationStreams(self, spec, stale_after_s=stale_after_s), instruction=instruction,
            source=source, recorder=self.get_name(), max_episodes=max_episodes, max_steps=max_steps,
            auto_start=auto_start, log=self._log, on_change=self.publish_diagnostics,
            reset_task=self._request_reset, resetting=self._resetting, reward_fn=reward_fn,
            reward_threshold=reward_threshold)
        self.create_subscription(JointState, COMMAND_STREAM, self._on_command, APPLIED_QOS)
        if self.core.twin:
            self.create_subscription(JointState, STATUS_STREAM, self._on_status, TASK_QOS)
        self.create_subscription(String, "episode_control", self._on_episode_control, TELEOP_QOS)
        if self.core.records_interventions:
            self.create_subscription(Bool, INTERVENTION_STREAM, self._on_intervention, TELEOP_QOS)
        for kind in EPISODE_EVENTS:  # start_episode, stop_episode, success_episode, discard_episode
            self.create_service(Trigger, f"{kind}_episode", lambda request, response, kind=kind:
                                self._on_service(response, kind))
        self.reset_client = self.create_client(Trigger, "reset_task")
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS)
        self.poll_timer = self.create_timer(POLL_PERIOD, self.core.advance)
        self.diagnostics_timer = self.create_timer(1.0, self.publish_diagnostics)
        kind = "twin (task_state, reward from task_status)" if self.core.twin else "hardware (no task_state, reward 0)"
        self.get_logger().info(f"recording {spec.name} into {writer.url} ({writer.num_episodes} episodes there): "
                               f"{kind}; streams {self.core.stream_names()}")

    # --- messages and services -> the core --------------------------------------------------------

    def _on_command(self, msg: JointState):
        names = self.action_names
        if len(msg.position) != len(names) or (msg.name and tuple(msg.name) != names):
            self.get_logger().warning(f"{COMMAND_STREAM}: expected {names}, found names {list(msg.name)} "
                                      f"with {len(msg.position)} values; ignored", throttle_duration_sec=2.0)
            return
        self.core.add_command(header_seconds(msg), msg.position)

    def _on_status(self, msg: JointState):
        if tuple(msg.name) != STATUS_NAMES:
            self.get_logger().warning(f"{STATUS_STREAM}: expected names {STATUS_NAMES}, found {list(msg.name)}; "
                                      "ignored", throttle_duration_sec=2.0)
            return
        self.core.add_status(header_seconds(msg), msg.position)

    def _on_episode_control(self, msg: String, info):
        if msg.data not in EPISODE_EVENTS:
            self.get_logger().warning(f"episode_control: expected one of {EPISODE_EVENTS}, found {msg.data!r}")
            return
        self.core.event(msg.data, self._sent_at(info))

    def _on_intervention(self, msg: Bool, info):
        self.core.add_intervention(self._sent_at(info), msg.data)

    @staticmethod
    def _sent_at(info) -> float:
        now, sent = time.time(), info["source_timestamp"] * 1e-9
        return sent if abs(sent - now) < EVENT_CLOCK_TOLERANCE else now

    def _on_service(self, response, kind: str):
        response.success, response.message = self.core.apply(kind, time.time())
        return response

    # --- the core's hooks -----------------------------------------------------------------------

    def _log(self, level: str, message: str) -> None:
        logger = self.get_logger()  # one call site per severity: rclpy refuses a change of it at a call site
        if level == "info":
            logger.info(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.error(message)

    def _resetting(self) -> bool:
        return self._reset_future is not None and not self._reset_future.done()

    def _request_reset(self) -> None:
        """Draw the next twin task (the reset_task service of TwinTaskNode), when there is one."""
        if not self.reset_task or self._resetting() or not self.reset_client.service_is_ready():
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
            self.core.report_problem(f"reset_task failed: {message}")

    def publish_diagnostics(self) -> None:
        level, message, values = self.core.status()
        status = DiagnosticStatus(level=LEVELS[level], name=f"{self.get_name()}: recorder", message=message,
                                  hardware_id=self.core.spec.name,
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)

    def close(self) -> None:
        """Stop the timers and close the store (an episode still open is discarded: never committed)."""
        self.poll_timer.cancel()
        self.diagnostics_timer.cancel()
        self.core.close()


# --- command line ---------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.drivers.recorder_node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="widowx", help="the robot whose twin task gives the spec")
    parser.add_argument("--task", default=None, help="the twin task whose embodiment spec is recorded "
                        "(default: the robot's, robot_rl.drivers.robot.default_task)")
    parser.add_argument("--out", required=True, help="the store: appended to if it exists (same spec), else created")
    parser.add_argument("--cameras", nargs="*", default=[],
                        help="camera names, space- or comma-separated (topics <name>/image_raw)")
    parser.add_argument("--rate", type=float, default=None, help="control rate in Hz (default and only: the spec's)")
    parser.add_argument("--episodes", type=int, default=0,
                        help="exit 0 after this many kept episodes (default 0: record until Ctrl-C)")
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
    parser.add_argument("--interventions", action="store_true",
                        help="store the per-step intervention key from the intervention topic (motion takeover)")
    parser.add_argument("--reward-classifier", default=None, metavar="PATH",
                        help="hardware: a reward classifier (robot-rl train-reward) labels successes")
    parser.add_argument("--reward-threshold", type=float, default=None,
                        help="the classifier's success probability threshold (default: the one saved with it)")
    parser.add_argument("--name", default="recorder", help="the node name")
    args, _ros_args = parser.parse_known_args(argv)
    if args.episodes < 0:
        parser.error(f"--episodes: expected 0 (record until Ctrl-C) or a number of episodes, found {args.episodes}")
    if args.max_steps is not None and args.max_steps < 1:
        parser.error(f"--max-steps: expected at least 1, found {args.max_steps}")
    args.cameras = [name for item in args.cameras for name in item.split(",") if name]
    if args.task is None:
        args.task = default_task(args.robot)
    return args


def detect_twin_task(context=None, timeout: float = 3.0, stopped=lambda: False) -> bool:
    """Whether a node publishes ``task_state`` in this namespace within ``timeout`` seconds."""
    import rclpy

    probe = rclpy.create_node("recorder_probe", context=context)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stopped():
            if probe.count_publishers("task_state") > 0:
                return True
            time.sleep(0.1)
        return False
    finally:
        probe.destroy_node()


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    stop_on_signals()  # from here Ctrl-C and SIGTERM only request a stop (robot_rl.drivers.spinning)
    from robot_rl.drivers.network import apply_dds_environment
    apply_dds_environment()  # before rclpy starts DDS: sockets on 127.0.0.1 unless opted out
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    spec = embodiment_spec(args.robot, args.task, tuple(args.cameras))  # no twin built: robot_rl.sim.specs
    instruction = task_facts(args.robot, args.task).instruction
    rclpy.init(args=["recorder", *argv], signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        twin = detect_twin_task(stopped=stop_requested) if args.twin_task is None else args.twin_task
        spec = spec if twin else spec.without("task_state")
        spec = spec.with_optional("intervention") if args.interventions else spec
        reward_fn, threshold = load_reward_fn(args.reward_classifier, args.reward_threshold)
        node = RecorderNode(spec, args.out, reward_fn=reward_fn, reward_threshold=threshold,
                            rate_hz=args.rate or spec.control_rate_hz, cameras=args.cameras,
                            instruction=instruction if args.instruction is None else args.instruction,
                            source=args.source, max_episodes=args.episodes, stale_after_s=args.stale_after,
                            node_name=args.name, max_steps=args.max_steps, auto_start=args.auto_start,
                            reset_task=args.reset_task, on_tail=args.on_tail)
        spin_until([node], until=lambda: node.core.done)
        open_episode = "; the episode in progress is discarded" if node.core.recording else ""
        print(f"recorder: {node.core.kept} episodes kept, {node.core.discarded} discarded, into {args.out}"
              + (f" (stopped by a signal{open_episode})" if stop_requested() else ""), flush=True)
    except (StoreError, ValueError) as err:
        raise SystemExit(f"recorder: {err}") from None
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


def load_reward_fn(path: str | None, threshold: float | None):
    """(reward_fn, threshold) of a saved reward classifier, or (None, 0.5) without one."""
    if path is None:
        return None, 0.5
    from robot_rl.learner.reward_classifier import load_classifier

    classifier = load_classifier(path)
    return classifier.probability, classifier.threshold if threshold is None else threshold


if __name__ == "__main__":
    main()
