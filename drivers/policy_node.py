"""The policy node: a learner checkpoint drives the robot through the driver node's safety filter.

    python -m robot_rl.drivers.policy_node --checkpoint runs/train/<run> --backend twin --rate 5 --report r.json

    node = PolicyNode(checkpoint, twin_observation(backend), rate_hz=5.0)   # next to a DriverNode

Every control tick the node reads an observation from its *observation source*, runs the agent
(deterministic by default) and publishes the action on `ee_delta_command`, which the driver node feeds
through its safety filter and IK. With action chunks ([N, h, 7]) a robot_rl.learner.chunking.ChunkExecutor
(shared with the training rollouts) turns chunks into one action per tick: by default the policy is
queried every h ticks and the chunk runs open-loop; ``execute_steps=k`` runs only k <= h actions per
query; ``temporal_ensemble=True`` queries every tick and averages the overlapping predictions (ACT).

| name                  | kind    | type                            | rate                            | QoS                               |
|-----------------------|---------|---------------------------------|---------------------------------|-----------------------------------|
| `ee_delta_command`    | publish | std_msgs/Float64MultiArray (7)  | the control rate (default 5 Hz) | reliable, volatile, last 10       |
| `diagnostics`         | publish | diagnostic_msgs/DiagnosticArray | 1 Hz, and at once on a reload   | reliable, volatile, last 10       |
| `checkpoint_announce` | subscr. | std_msgs/String                 | event: a new checkpoint         | reliable, transient local, last 1 |
| `ee_command_applied`  | subscr. | sensor_msgs/JointState (7)      | the driver's answer per command | reliable, volatile, last 10       |

- `ee_delta_command`: the agent's 7-D action (dxyz, drpy, gripper), clipped to [-1, 1]: the Bridge
  convention of robot_rl.drivers.driver_node. If this node stops, the driver's watchdog holds the arm.
- `checkpoint_announce`: a checkpoint folder, a `checkpoints/` folder or a run folder (its latest
  checkpoint). The weights are loaded in the callback (safetensors only; nothing is unpickled) and the
  new agent replaces the old one at the start of the next tick, with any open-loop chunk dropped. A
  path that does not load, a checkpoint for another robot, or one that reads a key the observation
  source lacks is refused: the old policy keeps running and diagnostics turn ERROR, naming the path and
  the reason, until a later checkpoint loads. Transient local: a node started after the announcement
  still gets the last one. ``poll_checkpoints_s`` > 0 also checks the running checkpoint's
  `checkpoints/latest` every so many seconds (for setups without the topic).
- `ee_command_applied`: the driver node publishes one for each ee_delta_command it executed (see
  robot_rl.drivers.driver_node); the node uses it only to time commands (below).
- `diagnostics`: one status "<node>: policy" with the checkpoint in use, inference latency p50/p99 in
  ms (time.perf_counter around agent.act, over the last 1000 queries), command latency p50/p99 in ms
  (over the last 1000 answered commands) and the commands left unanswered, actions published, the
  control rate achieved, reloads done and the last refusal.

*Command latency* is a round trip, timed in this process with time.perf_counter: from just before a
command is published to the arrival of the driver's `ee_command_applied` for it, i.e. DDS delivery to
the driver, its safety filter, IK and backend write (in the command's callback), the applied message's
publication and DDS delivery back, plus any wait for this process's executor. It is an upper bound on
publish -> backend write (the way back is about one more DDS delivery), not the time the arm takes to
move. Answers carry no command id: they are matched to commands in FIFO order (the driver answers in
order, within its callback). A command the driver refused (torque off, a fault, a malformed or NaN
command) gets no answer, so when an answer arrives, the pending commands older than half a control
period that have a newer one pending are dropped and counted as unanswered: the newer command is the
one answered, given round trips well within a control period (about 2 ms p50 on the twin here, 200 ms
at 5 Hz). The price: a round trip longer than a control period is not measured as such but shows up
as unanswered commands (and its answer timed from the newer command). The matching assumes the node
is the only publisher of ee_delta_command in its namespace (the deploy graph's case). ``--report PATH``
writes the run's numbers as JSON when the node stops (write_report).

The observation source is a callable ``() -> dict[str, np.ndarray]`` (unbatched) giving at least the keys
the checkpoint reads (its config's ``obs_keys`` and ``cameras``). ``twin_observation(backend)`` reads the
WidowX twin in this process; ``robot_rl.drivers.streams.topic_observation`` builds the same keys on
hardware (``state`` from joint_states and the forward kinematics, cameras from their topics; the command
line's ``--observation topics``), and the node stops when one of those streams goes stale. A
checkpoint that reads ``task_state`` (the default ``obs_keys`` of ``robot-rl train``) needs privileged
object and goal state that only a twin has: such a policy cannot run on hardware, and the node refuses
it at start-up with an error naming the key.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String

from robot_rl.drivers.spinning import spin_until
from robot_rl.learner.checkpoint import latest_checkpoint, resolve_checkpoint
from robot_rl.learner.chunking import ACT_DECAY, ChunkExecutor

COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
ANNOUNCE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
EE_ACTION_DIM = 7
DIAGNOSTICS_PERIOD = 1.0  # s
LATENCY_WINDOW = 1000     # inference and command timings kept for p50/p99
MAX_UNANSWERED = 100      # commands awaiting the driver's answer; older ones count as unanswered
PRIVILEGED_KEYS = {"task_state": "twin-only privileged object and goal state; retrain with obs_keys=[state]"}

ObservationSource = Callable[[], dict[str, np.ndarray]]


class ObservationMismatch(ValueError):
    """The observation source cannot give what the checkpoint reads (a missing key or a wrong shape)."""


@dataclass(frozen=True)
class LoadedPolicy:
    agent: object
    folder: Path
    robot: str
    task: str
    keys: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]  # per key: the unbatched shape the agent expects (state flattened)

    def act(self, obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        """[h, 7] actions (h = 1 without chunks) for one observation."""
        batch = {k: np.asarray(obs[k])[None] for k in self.keys}
        actions = np.asarray(self.agent.act(batch, deterministic=deterministic))[0]
        return actions if actions.ndim == 2 else actions[None]


def load_checkpoint_policy(checkpoint: str | os.PathLike) -> LoadedPolicy:
    """The agent of a checkpoint (weights from safetensors) and the observation keys it reads."""
    from robot_rl.learner.policy import load_policy

    agent, env, cfg, folder = load_policy(checkpoint)
    env.close()
    keys = (*cfg.obs_keys, *cfg.cameras)
    shapes = {**{k: (int(n),) for k, n in agent.shapes.state.items()},
              **{k: tuple(shape) for k, shape in agent.shapes.cameras.items()}}
    if agent.action_dim != EE_ACTION_DIM:
        raise ValueError(f"checkpoint={folder}: its actions have {agent.action_dim} values, ee_delta_command "
                         f"takes {EE_ACTION_DIM} (dxyz, drpy, gripper)")
    return LoadedPolicy(agent, Path(folder), str(cfg.robot), str(cfg.task), keys, shapes)


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
    """The twin env's observation (state, task_state, and ``cameras`` rendered) read under the lock its
    physics thread holds around each step (as ScriptedTeleop reads it), so no half-stepped state."""
    env = backend.env.unwrapped if hasattr(backend.env, "unwrapped") else backend.env
    lock = backend._lock  # the twin backend's physics lock (no public accessor; see ScriptedTeleop)

    def observe() -> dict[str, np.ndarray]:
        with lock:
            obs = env._observe()  # no public observe: step() and reset() return it
            for name in cameras:
                obs[name] = env._render(name)
        return obs

    return observe


class PolicyNode(Node):
    """Observation -> agent -> ee_delta_command at the control rate; hot-reloads announced checkpoints."""

    def __init__(self, checkpoint: str | os.PathLike, observation_source: ObservationSource, *,
                 rate_hz: float = 5.0, deterministic: bool = True, poll_checkpoints_s: float = 0.0,
                 node_name: str = "policy", execute_steps: int | None = None, temporal_ensemble: bool = False,
                 ensemble_decay: float = ACT_DECAY, **node_kwargs):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz: expected a positive control rate in Hz, found {rate_hz}")
        if not poll_checkpoints_s >= 0:
            raise ValueError(f"poll_checkpoints_s: expected seconds >= 0 (0: no polling), found {poll_checkpoints_s}")
        self.observe, self.rate_hz, self.deterministic = observation_source, float(rate_hz), deterministic
        self.policy = self._load_checked(checkpoint)  # before the node exists: a refusal leaves nothing behind
        super().__init__(node_name, **node_kwargs)
        self._pending: LoadedPolicy | None = None
        self._chunks = ChunkExecutor(execute_steps, temporal_ensemble, ensemble_decay)
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.command_latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._awaiting_answer: deque[float] = deque()  # perf_counter at publish, oldest first
        self.actions_published, self.reloads, self.commands_unanswered = 0, 0, 0
        self.refusal: str | None = None
        self._refused_path: Path | None = None
        self._ticks, self._window_start, self._control_rate = 0, time.monotonic(), 0.0
        self._create_interfaces(poll_checkpoints_s)
        self.get_logger().info(f"policy from {self.policy.folder} ({self.policy.robot}/{self.policy.task}, "
                               f"reads {list(self.policy.keys)})")

    def _create_interfaces(self, poll_checkpoints_s: float):
        self.command_pub = self.create_publisher(Float64MultiArray, "ee_delta_command", COMMAND_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", COMMAND_QOS)
        self.create_subscription(String, "checkpoint_announce", self._on_announce, ANNOUNCE_QOS)
        self.create_subscription(JointState, "ee_command_applied", self._on_command_applied, COMMAND_QOS)
        self.control_timer = self.create_timer(1.0 / self.rate_hz, self.tick)
        self.diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD, self.publish_diagnostics)
        self.poll_timer = self.create_timer(poll_checkpoints_s, self._poll) if poll_checkpoints_s > 0 else None

    # --- the control loop ---------------------------------------------------------------------

    def tick(self) -> None:
        self._ticks += 1
        self._swap_in_pending()
        if self._chunks.needs_query():
            self._chunks.push(self._query(self.observe()))
        action = np.clip(np.asarray(self._chunks.next_action(), dtype=float), -1.0, 1.0)
        msg = Float64MultiArray(data=action.tolist())
        if len(self._awaiting_answer) >= MAX_UNANSWERED:
            self._awaiting_answer.popleft()
            self.commands_unanswered += 1
        self._awaiting_answer.append(time.perf_counter())
        self.command_pub.publish(msg)
        self.actions_published += 1

    def _on_command_applied(self, _msg: JointState) -> None:
        """The driver's answer to the oldest pending command (FIFO; see the module docstring)."""
        now = time.perf_counter()
        pending = self._awaiting_answer
        while len(pending) > 1 and now - pending[0] > 0.5 / self.rate_hz:
            pending.popleft()  # refused by the driver: the answer is the newer command's
            self.commands_unanswered += 1
        if pending:  # else an answer to a command already counted unanswered
            self.command_latencies_ms.append(1e3 * (now - pending.popleft()))

    @property
    def awaiting_answer(self) -> bool:
        """A command was published and the driver's ee_command_applied for it has not arrived (yet)."""
        return bool(self._awaiting_answer)

    def _query(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        start = time.perf_counter()
        actions = self.policy.act(obs, self.deterministic)
        self.latencies_ms.append(1e3 * (time.perf_counter() - start))
        return actions

    def _swap_in_pending(self) -> None:
        if self._pending is None:
            return
        self.policy, self._pending = self._pending, None
        self._chunks.reset()
        self.reloads += 1
        self.refusal = None
        self.get_logger().info(f"now running checkpoint {self.policy.folder}")
        self.publish_diagnostics()

    def latency_percentiles_ms(self) -> tuple[float, float]:
        """(p50, p99) of the recent inference latencies in ms; NaN before the first query."""
        return _percentiles(self.latencies_ms)

    def command_latency_percentiles_ms(self) -> tuple[float, float]:
        """(p50, p99) of the recent command round trips in ms (module docstring); NaN before the first."""
        return _percentiles(self.command_latencies_ms)

    def summary(self) -> dict:
        """The run's numbers: what --report writes (NaN where nothing was measured yet)."""
        (p50, p99), (c50, c99) = self.latency_percentiles_ms(), self.command_latency_percentiles_ms()
        return {"checkpoint": str(self.policy.folder), "task": f"{self.policy.robot}/{self.policy.task}",
                "actions_published": self.actions_published, "inference_p50_ms": p50, "inference_p99_ms": p99,
                "inference_samples": len(self.latencies_ms), "command_p50_ms": c50, "command_p99_ms": c99,
                "command_samples": len(self.command_latencies_ms), "commands_unanswered": self.commands_unanswered,
                "commands_pending": len(self._awaiting_answer), "reloads": self.reloads}

    # --- hot reload ---------------------------------------------------------------------------

    def _on_announce(self, msg: String) -> None:
        self.request_reload(msg.data)

    def _poll(self) -> None:
        latest = latest_checkpoint(self.policy.folder.parent)
        if latest is not None and latest.resolve() not in (self.policy.folder.resolve(), self._refused_path):
            self.request_reload(latest)

    def request_reload(self, path: str | os.PathLike) -> bool:
        """Load ``path`` now; it replaces the running policy at the next tick. False (and an ERROR in
        diagnostics, the old policy running on) when it is refused."""
        try:
            policy = self._load_checked(path, robot=self.policy.robot)
        except Exception as err:  # any bad checkpoint: keep driving with the old one
            return self._refuse(path, err)
        if policy.folder.resolve() == self.policy.folder.resolve():
            self.get_logger().info(f"checkpoint {policy.folder} is already running")
            return True
        self._pending = policy
        self.get_logger().info(f"loaded checkpoint {policy.folder}; switching at the next tick")
        return True

    def _load_checked(self, path: str | os.PathLike, robot: str | None = None) -> LoadedPolicy:
        policy = load_checkpoint_policy(path)
        if robot is not None and policy.robot != robot:
            raise ValueError(f"checkpoint={policy.folder} drives robot {policy.robot!r}, this node {robot!r}")
        check_observation(policy, self.observe())
        return policy

    def _refuse(self, path, err: Exception) -> bool:
        self.refusal = f"checkpoint {str(path)!r} refused, still running {self.policy.folder}: {err}"
        self._refused_path = _resolved_or_none(path)
        self.get_logger().error(self.refusal)
        self.publish_diagnostics()
        return False

    # --- diagnostics --------------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        now = time.monotonic()
        if now > self._window_start and self._ticks:
            self._control_rate = self._ticks / (now - self._window_start)
            self._ticks, self._window_start = 0, now
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self._status()]
        self.diagnostics_pub.publish(msg)

    def _status(self) -> DiagnosticStatus:
        level, message = ((DiagnosticStatus.ERROR, self.refusal) if self.refusal
                          else (DiagnosticStatus.OK, f"running {self.policy.folder.name}"))
        values = {**{k: f"{v:.2f}" if isinstance(v, float) else v for k, v in self.summary().items()},
                  "control_rate_hz": f"{self._control_rate:.1f}", "control_rate_target_hz": f"{self.rate_hz:.1f}",
                  "deterministic": self.deterministic, "last_refusal": self.refusal or ""}
        return DiagnosticStatus(level=level, name=f"{self.get_name()}: policy", message=message,
                                hardware_id=self.policy.robot,
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    def stop(self) -> None:
        """Stop publishing (the driver's watchdog then holds the arm)."""
        for timer in (self.control_timer, self.diagnostics_timer, self.poll_timer):
            if timer is not None:
                timer.cancel()


def _percentiles(window) -> tuple[float, float]:
    if not window:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(np.fromiter(window, float), [50, 99])
    return float(p50), float(p99)


def _resolved_or_none(path) -> Path | None:
    try:
        return resolve_checkpoint(path).resolve()
    except (OSError, ValueError):
        return None


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


def checkpoint_config(checkpoint):
    """The resolved training config a checkpoint was saved with (robot and task split)."""
    from omegaconf import OmegaConf

    from robot_rl.tasks import split_task

    return split_task(OmegaConf.load(resolve_checkpoint(checkpoint) / "config.yaml"))


def checkpoint_task(checkpoint) -> tuple[str, str]:
    """(robot, task) a checkpoint was trained on."""
    cfg = checkpoint_config(checkpoint)
    return str(cfg.robot), str(cfg.task)


def main(argv=None) -> None:
    args = parse_args(argv)
    from robot_rl.drivers.network import apply_dds_environment
    apply_dds_environment()  # before rclpy starts DDS: sockets on 127.0.0.1 unless opted out
    import rclpy

    if args.wait_for_acting:
        from robot_rl.learner.actor import wait_until_acting

        wait_until_acting(args.checkpoint)
    robot, task = checkpoint_task(args.checkpoint)
    if robot != "widowx":
        raise SystemExit(f"policy node: checkpoint={args.checkpoint} drives {robot!r}; --backend twin is the WidowX")
    from robot_rl.drivers.streams import StaleStreamError

    rclpy.init()
    try:
        if args.observation == "topics":
            _run_topics(args, robot, task)
        else:
            _run_twin(args, task)
    except (ObservationMismatch, StaleStreamError, ValueError) as err:
        raise SystemExit(f"policy node: {err}") from None
    finally:
        rclpy.try_shutdown()


def _run_twin(args: argparse.Namespace, task: str) -> None:
    """The WidowX twin, its driver node and the policy node in one process on one executor."""
    from robot_rl.drivers.widowx.node import make_node
    from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend

    trained = checkpoint_config(args.checkpoint)  # the twin renders the cameras it read, at its image size
    backend = WidowXTwinBackend(task=task, seed=args.seed, image_size=tuple(trained.get("image_size", (128, 128))),
                                dynamics=args.dynamics, control_period=1.0 / args.rate)
    backend.connect()
    driver_args = argparse.Namespace(rate=50.0, command_rate=args.rate, backend="twin", port="-",
                                     name="widowx_driver")
    driver, policy = make_node(backend, driver_args), None
    try:
        driver.get_logger().info(driver.enable_torque(True)[1])
        observe = twin_observation(backend, tuple(trained.get("cameras", ())))
        policy = PolicyNode(args.checkpoint, observe, **node_options(args))
        steps = args.steps or backend.env.max_steps
        spin_until([driver, policy], until=lambda: policy.actions_published >= steps or _solved(backend))
        _await_answers([driver, policy], policy)
        _report(policy, _solved(backend), args.report)
    finally:
        driver.shutdown_backend()  # torque off, physics thread stopped
        for created in (policy, driver):
            if created is not None:
                created.destroy_node()


def _run_topics(args: argparse.Namespace, robot: str, task: str, ready_timeout: float = 10.0) -> None:
    """Observations from the topics of a driver and cameras running elsewhere (hardware): the policy node
    starts once every stream is live and stops (StaleStreamError) when one goes stale. The streams are
    spun by an executor of their own, so loading a checkpoint or running inference never starves them."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from robot_rl.drivers.streams import StaleStreamError, topic_observation
    from robot_rl.sim import make_env

    env = make_env(robot, task, cameras=tuple(args.cameras))
    spec = env.unwrapped.embodiment
    env.close()
    streams_node = rclpy.create_node(f"{args.name}_observation")
    observe = topic_observation(streams_node, spec, stale_after_s=args.stale_after)
    streams_executor = SingleThreadedExecutor()
    streams_executor.add_node(streams_node)
    thread = threading.Thread(target=_spin_quietly, args=(streams_executor,), name="observation-streams", daemon=True)
    thread.start()
    policy = None
    try:
        deadline = time.monotonic() + ready_timeout
        while observe.stale() and time.monotonic() < deadline:
            time.sleep(0.05)
        if observe.stale():
            raise StaleStreamError(observe.stale(), args.stale_after)
        policy = PolicyNode(args.checkpoint, observe, **node_options(args))
        spin_until([policy], until=lambda: args.steps is not None and policy.actions_published >= args.steps)
        _await_answers([policy], policy)
    finally:
        if policy is not None:  # also on Ctrl-C, SIGTERM or a stale stream
            _report(policy, None, args.report)
        streams_executor.shutdown()
        thread.join(timeout=5.0)
        for created in (policy, streams_node):
            if created is not None:
                created.destroy_node()


def _spin_quietly(executor) -> None:
    """Spin until the executor or the context shuts down. Ctrl-C shuts the context down under a running
    spin, which then fails in one of several ways; only a failure with the context still up is an error."""
    import rclpy

    try:
        executor.spin()
    except Exception:
        if rclpy.ok():
            raise


def _solved(backend) -> bool:
    with backend._lock:  # _evaluate has no side effects; the twin has no public "evaluate now"
        return bool(backend.env._evaluate(sparse=True).success)


def _await_answers(nodes: list, policy: PolicyNode) -> None:
    """Spin up to one control period (at most 1 s) more for the driver's answer to the last command."""
    if policy.context.ok():  # not after an rclpy shutdown (Ctrl-C)
        deadline = time.monotonic() + min(1.0, 1.0 / policy.rate_hz)
        spin_until(nodes, until=lambda: not policy.awaiting_answer or time.monotonic() > deadline)


def _report(policy: PolicyNode, success: bool | None, path: str | None) -> None:
    """Print the run's outcome and latencies; with ``path``, write them as JSON (write_report)."""
    s = policy.summary()
    actions, checkpoint = s["actions_published"], s["checkpoint"]
    print(f"{actions} actions sent (checkpoint {checkpoint})" if success is None
          else f"success: {success} after {actions} actions (checkpoint {checkpoint})")
    print(f"inference latency: p50 {s['inference_p50_ms']:.2f} ms, p99 {s['inference_p99_ms']:.2f} ms over "
          f"{s['inference_samples']} queries")
    print(f"command latency: p50 {s['command_p50_ms']:.2f} ms, p99 {s['command_p99_ms']:.2f} ms over "
          f"{s['command_samples']} commands (round trip ee_delta_command -> ee_command_applied; "
          f"{s['commands_unanswered'] + s['commands_pending']} unanswered)", flush=True)
    if path:
        write_report(path, policy, success)


def write_report(path: str | os.PathLike, policy: PolicyNode, success: bool | None) -> Path:
    """PolicyNode.summary() and ``success`` (None: not known, on hardware) as JSON, written atomically;
    a latency not measured is null."""
    import json
    import math

    report = {"success": success, **{k: None if isinstance(v, float) and not math.isfinite(v) else v
                                     for k, v in policy.summary().items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    main()
