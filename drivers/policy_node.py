"""The policy node: a learner checkpoint drives the robot through the driver node's safety filter.

    python -m robot_rl.drivers.policy_node --checkpoint runs/train/<run> --backend twin --rate 5 --report r.json

    node = PolicyNode(checkpoint, twin_observation(backend), rate_hz=5.0)   # next to a DriverNode

Every control tick the node reads an observation from its *observation source*, runs the agent
(deterministic by default) and publishes the action on `ee_delta_command`, which the driver node feeds
through its safety filter and IK. The ROS-free part (checking the checkpoint against the observation,
action chunks, hot reload, latencies, the report) is robot_rl.drivers.policy_runner; its docstring says
how chunks run, when a checkpoint is refused and how commands are matched to answers.

| name                  | kind    | type                            | rate                            | QoS                               |
|-----------------------|---------|---------------------------------|---------------------------------|-----------------------------------|
| `ee_delta_command`    | publish | std_msgs/Float64MultiArray (7)  | the control rate (default 5 Hz) | reliable, volatile, last 10       |
| `diagnostics`         | publish | diagnostic_msgs/DiagnosticArray | 1 Hz, and at once on a reload   | reliable, volatile, last 10       |
| `checkpoint_announce` | subscr. | std_msgs/String                 | event: a new checkpoint         | reliable, transient local, last 1 |
| `ee_command_applied`  | subscr. | sensor_msgs/JointState (7)      | the driver's answer per command | reliable, volatile, last 10       |
| `intervention`        | subscr. | std_msgs/Bool                   | a takeover teleop's tick        | reliable, volatile, last 10       |

- `ee_delta_command`: the agent's 7-D action (dxyz, drpy, gripper), clipped to [-1, 1]: the Bridge
  convention of robot_rl.drivers.driver_node. If this node stops, the driver's watchdog holds the arm.
- `checkpoint_announce`: a checkpoint folder, a `checkpoints/` folder or a run folder (its latest
  checkpoint), loaded in the callback and swapped in at the next tick; a refused one leaves the old
  policy running with diagnostics ERROR. Transient local: a node started after the announcement still
  gets the last one. ``poll_checkpoints_s`` > 0 also checks the running checkpoint's
  `checkpoints/latest` every so many seconds (for setups without the topic).
- `ee_command_applied`: the driver node publishes one for each ee_delta_command it executed; the node
  uses it only to time commands.
- `intervention`: while the newest says True an operator has taken over (robot_rl.drivers.takeover): the
  node publishes nothing; when it says False again the node resumes with a fresh query (an open-loop
  chunk planned before the takeover is dropped).
- `diagnostics`: one status "<node>: policy" with the checkpoint in use, inference latency p50/p99 in
  ms (time.perf_counter around agent.act, over the last 1000 queries), command latency p50/p99 in ms
  (over the last 1000 answered commands) and the commands left unanswered, actions published, the
  control rate achieved, reloads done and the last refusal.

*Command latency* is a round trip timed in this process: from just before a command is published to the
arrival of the driver's `ee_command_applied` for it, i.e. DDS delivery to the driver, its safety filter,
IK and backend write (in the command's callback), the applied message's publication and DDS delivery
back, plus any wait for this process's executor. It is an upper bound on publish -> backend write (the
way back is about one more DDS delivery), not the time the arm takes to move. ``--report PATH`` writes
the run's numbers as JSON when the node stops (policy_runner.write_report).

Observation sources: ``twin_observation(backend)`` reads the WidowX twin in this process (``--observation
twin``); on hardware (``--observation topics``) robot_rl.drivers.streams builds the same keys from
joint_states and camera topics, and the node stops when one of those streams goes stale. A checkpoint
reading ``task_state`` (the default ``obs_keys`` of ``robot-rl train``) cannot run on hardware: it is
refused at start-up with an error naming the key.

Stopping: Ctrl-C and SIGTERM end the spin; the timers are cancelled, the report written and the nodes
destroyed before the ROS context shuts down (rclpy's own signal handlers are off, so nothing publishes on
a context that is gone), and the process exits 0.
"""
from __future__ import annotations

import argparse
import os
import signal
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String

from robot_rl.drivers.policy_runner import (
    LoadedPolicy,
    ObservationMismatch,
    ObservationSource,
    PolicyRunner,
    load_checkpoint_policy,
    report_text,
    twin_observation,
    write_report,
)
from robot_rl.drivers.spinning import spin_until
from robot_rl.drivers.takeover import PolicyYield
from robot_rl.learner.chunking import ACT_DECAY

COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
ANNOUNCE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTICS_PERIOD = 1.0  # s


class PolicyNode(Node):
    """Observation -> agent -> ee_delta_command at the control rate; hot-reloads announced checkpoints.
    ``checkpoint``: a path, or a LoadedPolicy already loaded (load_checkpoint_policy)."""

    def __init__(self, checkpoint: LoadedPolicy | str | os.PathLike, observation_source: ObservationSource, *,
                 rate_hz: float = 5.0, deterministic: bool = True, poll_checkpoints_s: float = 0.0,
                 node_name: str = "policy", execute_steps: int | None = None, temporal_ensemble: bool = False,
                 ensemble_decay: float = ACT_DECAY, **node_kwargs):
        if not poll_checkpoints_s >= 0:
            raise ValueError(f"poll_checkpoints_s: expected seconds >= 0 (0: no polling), found {poll_checkpoints_s}")
        # Loaded and checked before the node exists: a refusal leaves nothing behind.
        self.runner = PolicyRunner(checkpoint, observation_source, rate_hz=rate_hz, deterministic=deterministic,
                                   execute_steps=execute_steps, temporal_ensemble=temporal_ensemble,
                                   ensemble_decay=ensemble_decay, on_change=self.publish_diagnostics)
        super().__init__(node_name, **node_kwargs)
        self.runner.log = self.get_logger()
        self._publishing = True
        self.yielding = PolicyYield()
        self.create_subscription(Bool, "intervention", lambda msg: self.yielding.update(msg.data), COMMAND_QOS)
        self.command_pub = self.create_publisher(Float64MultiArray, "ee_delta_command", COMMAND_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", COMMAND_QOS)
        self.create_subscription(String, "checkpoint_announce", lambda msg: self.runner.request_reload(msg.data),
                                 ANNOUNCE_QOS)
        self.create_subscription(JointState, "ee_command_applied", self._on_applied, COMMAND_QOS)
        self.create_timer(1.0 / self.runner.rate_hz, self.tick)
        self.create_timer(DIAGNOSTICS_PERIOD, self.publish_diagnostics)
        if poll_checkpoints_s > 0:
            self.create_timer(poll_checkpoints_s, self.runner.poll)
        policy = self.policy
        self.get_logger().info(f"policy from {policy.folder} ({policy.robot}/{policy.task}, reads {list(policy.keys)})")

    def _on_applied(self, _msg: JointState) -> None:
        if not self.yielding.held:  # the operator's commands are not this node's to time
            self.runner.answered()

    @property
    def policy(self) -> LoadedPolicy:
        return self.runner.policy

    @property
    def actions_published(self) -> int:
        return self.runner.actions_published

    @property
    def latencies_ms(self):
        return self.runner.latencies_ms

    def summary(self) -> dict:
        return self.runner.summary()

    def tick(self) -> None:
        if self.yielding.held:
            return
        if self.yielding.take_resumed():
            self.runner.chunks.reset()
        if self._publishing:
            self.command_pub.publish(Float64MultiArray(data=self.runner.next_action().tolist()))

    def publish_diagnostics(self) -> None:
        if not self._publishing:
            return
        status = self.runner.status()
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [DiagnosticStatus(level=DiagnosticStatus.OK if status.ok else DiagnosticStatus.ERROR,
                                       name=f"{self.get_name()}: policy", message=status.message,
                                       hardware_id=self.policy.robot,
                                       values=[KeyValue(key=k, value=v) for k, v in status.values.items()])]
        self.diagnostics_pub.publish(msg)

    def stop(self) -> None:
        """Stop publishing: timers cancelled, no command or diagnostics from here on (the driver's watchdog
        then holds the arm). The subscriptions still count the driver's answers."""
        self._publishing = False
        for timer in self.timers:
            timer.cancel()


# --- command line ---------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.drivers.policy_node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder, checkpoints/ folder or run folder")
    parser.add_argument("--backend", choices=("twin",), default="twin",
                        help="twin: the WidowX twin in this process (with --observation twin)")
    parser.add_argument("--observation", choices=("twin", "topics"), default="twin",
                        help="twin: read the twin in this process; topics: joint_states and camera topics of a "
                             "driver running elsewhere (hardware; robot_rl.drivers.streams)")
    parser.add_argument("--cameras", nargs="*", default=[], help="topics: camera names (<name>/image_raw)")
    parser.add_argument("--stale-after", type=float, default=0.5,
                        help="topics: seconds without a message before a stream is stale (the node stops)")
    parser.add_argument("--rate", type=float, default=5.0, help="control rate in Hz (Bridge: 5)")
    parser.add_argument("--steps", type=int, default=None, help="actions to send (default: the task's step limit)")
    parser.add_argument("--seed", type=int, default=0, help="the twin's task seed")
    parser.add_argument("--dynamics", default=None, help="the twin's robot_rl/configs/sim/dynamics preset, e.g. perturbed")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    parser.add_argument("--wait-for-acting", action="store_true",
                        help="--checkpoint is a fine-tuning run folder: start once its learner publishes its first "
                             "online checkpoint (robot-rl finetune)")
    parser.add_argument("--poll-checkpoints", type=float, default=0.0,
                        help="seconds between checks of checkpoints/latest (0: only the announce topic)")
    parser.add_argument("--execute-steps", type=int, default=None,
                        help="action chunks: run k <= h actions of each chunk, then query again (default h)")
    parser.add_argument("--temporal-ensemble", action="store_true",
                        help="action chunks: query every tick and blend the overlapping chunks (ACT)")
    parser.add_argument("--name", default="policy", help="the node name")
    parser.add_argument("--report", default=None, metavar="PATH",
                        help="write a JSON report here when the node stops (twin: after its steps or success; "
                             "topics: at exit, Ctrl-C included): success, actions, inference and command latency")
    args, _ros_args = parser.parse_known_args(argv)
    if not args.rate > 0:
        parser.error(f"--rate: expected a positive rate in Hz, found {args.rate}")
    return args


def node_options(args: argparse.Namespace) -> dict:
    return dict(rate_hz=args.rate, deterministic=not args.stochastic, poll_checkpoints_s=args.poll_checkpoints,
                node_name=args.name, execute_steps=args.execute_steps, temporal_ensemble=args.temporal_ensemble)


def main(argv=None) -> None:
    args = parse_args(argv)
    from robot_rl.drivers.network import apply_dds_environment
    apply_dds_environment()  # before rclpy starts DDS: sockets on 127.0.0.1 unless opted out
    signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's stop, handled as Ctrl-C from here on
    from robot_rl.drivers.streams import StaleStreamError

    try:
        _run(args)
    except KeyboardInterrupt:
        pass  # stopped before the node ran (loading, waiting): nothing to report
    except (ObservationMismatch, StaleStreamError, ValueError, FileNotFoundError) as err:
        raise SystemExit(f"policy node: {err}") from None


def _run(args: argparse.Namespace) -> None:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    if args.wait_for_acting:
        from robot_rl.learner.actor import wait_until_acting

        wait_until_acting(args.checkpoint)
    policy = load_checkpoint_policy(args.checkpoint)  # its config and spec, read once; no twin built
    from robot_rl.drivers.robot import ROBOTS

    if args.observation != "topics" and policy.robot not in ROBOTS:
        raise SystemExit(f"policy node: checkpoint={args.checkpoint} drives {policy.robot!r}, which has no driver "
                         f"twin (robots: {', '.join(ROBOTS)})")
    # Our handlers stop the spin; the context is shut down last, after every timer is cancelled.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    try:
        (_run_topics if args.observation == "topics" else _run_twin)(args, policy)
    finally:
        rclpy.try_shutdown()


def _run_twin(args: argparse.Namespace, policy: LoadedPolicy) -> None:
    """The checkpoint's robot's twin, its driver node and the policy node in one process on one executor; the
    twin renders the cameras the checkpoint reads, at its image size. The driver node comes from the robot's
    process module (``make_node(backend, args)``: the arms' DriverNode, the car's own node)."""
    import importlib

    from robot_rl.drivers.robot import TWIN, robot_definition

    definition = robot_definition(policy.robot)
    backend = definition.make_backend(TWIN, port="-", task=policy.task, seed=args.seed, dynamics=args.dynamics,
                                      command_rate=args.rate, image_size=policy.image_size)
    backend.connect()
    driver_args = argparse.Namespace(rate=50.0, command_rate=args.rate, backend=TWIN, port="-",
                                     name=f"{definition.name}_driver", cells=3)  # cells: the car's battery
    driver, node = importlib.import_module(definition.process).make_node(backend, driver_args), None
    solved = lambda: bool(backend.evaluate().success)  # noqa: E731
    try:
        driver.get_logger().info(driver.enable_torque(True)[1])
        node = PolicyNode(policy, twin_observation(backend, policy.cameras), **node_options(args))
        steps = args.steps or backend.env.max_steps
        spin_until([driver, node], until=lambda: node.actions_published >= steps or solved())
        _finish([driver, node], node, solved(), args.report)
    finally:
        driver.shutdown_backend()  # torque off, physics thread stopped
        for created in (node, driver):
            if created is not None:
                created.destroy_node()


def _run_topics(args: argparse.Namespace, policy: LoadedPolicy, ready_timeout: float = 10.0) -> None:
    """Observations from the topics of a driver and cameras running elsewhere (hardware): the policy node
    starts once every stream is live and stops (StaleStreamError) when one goes stale. The streams are
    spun by an executor of their own, so loading a checkpoint or running inference never starves them."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from robot_rl.drivers.streams import StaleStreamError, topic_observation

    streams_node = rclpy.create_node(f"{args.name}_observation")
    observe = topic_observation(streams_node, _streams_spec(policy, args.cameras), stale_after_s=args.stale_after)
    streams_executor = SingleThreadedExecutor()
    streams_executor.add_node(streams_node)
    thread = threading.Thread(target=streams_executor.spin, name="observation-streams", daemon=True)
    thread.start()
    node, finished = None, False
    try:
        deadline = time.monotonic() + ready_timeout
        while observe.stale() and time.monotonic() < deadline:
            time.sleep(0.05)
        if observe.stale():
            raise StaleStreamError(observe.stale(), args.stale_after)
        node = PolicyNode(policy, observe, **node_options(args))
        spin_until([node], until=lambda: args.steps is not None and node.actions_published >= args.steps)
        _finish([node], node, None, args.report)
        finished = True
    finally:
        if node is not None and not finished:  # a stale stream: still report what ran
            node.stop()
            _report(node, None, args.report)
        streams_executor.shutdown()
        thread.join(timeout=5.0)
        for created in (node, streams_node):
            if created is not None:
                created.destroy_node()


def _streams_spec(policy: LoadedPolicy, cameras: list[str]):
    """The checkpoint's spec with the ``--cameras`` the topics carry: a camera the policy reads at the
    size it was trained on, any other at the checkpoint's image size."""
    import dataclasses

    from robot_rl.datasets.spec import CameraSpec

    return dataclasses.replace(policy.spec, cameras={
        name: policy.spec.cameras.get(name) or CameraSpec(*policy.image_size) for name in cameras})


def _finish(nodes: list, node: PolicyNode, success: bool | None, report: str | None) -> None:
    """After the spin (steps done, success, Ctrl-C or SIGTERM): stop publishing, spin up to one control
    period (at most 1 s) more for the driver's answer to the last command, then report."""
    node.stop()
    deadline = time.monotonic() + min(1.0, 1.0 / node.runner.rate_hz)
    spin_until(nodes, until=lambda: not node.runner.awaiting_answer or time.monotonic() > deadline)
    _report(node, success, report)


def _report(node: PolicyNode, success: bool | None, path: str | None) -> None:
    """Print the run's outcome and latencies; with ``path``, write them as JSON (write_report)."""
    summary = node.summary()
    print(report_text(summary, success), flush=True)
    if path:
        write_report(path, summary, success)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
