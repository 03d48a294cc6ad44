"""A robot's ROS 2 process, the same for every robot (robot_rl.drivers.robot): the driver node on the twin
or the hardware, and with the twin the nodes that must share its physics (cameras, task state, the scripted
operator, the fine-tuning policy). Each robot's module (robot_rl.drivers.<robot>.node) calls :func:`main`
with its RobotDefinition; the options are documented there.

With ``--backend twin`` the MuJoCo twin lives in this process, so everything that reads its state runs
here too, on the same executor (ROS 2 composition, without the component containers of a full ROS
install). DDS stays on this machine unless asked otherwise (robot_rl.drivers.network). Torque starts off
(call the enable_torque service, or pass --enable-torque; the twin's scripted operator turns it on).
Topics and services: see robot_rl.drivers.driver_node. The safety filter's control_period is the
*command* period (--command-rate, default the robot's control rate), not the bus period.
"""
from __future__ import annotations

import argparse

from robot_rl.drivers.robot import TWIN, RobotDefinition

TWIN_ONLY = ("cameras", "twin_task", "scripted_episodes", "wait_for_recorder", "policy", "dynamics",
             "scripted_takeover")


def parse_args(definition: RobotDefinition, argv=None, description: str | None = None,
               port_help: str = "the hardware's port or address") -> argparse.Namespace:
    """The options every robot process takes; defaults from the robot's definition and its spec module."""
    from robot_rl.sim.specs import robot_spec_module

    spec = robot_spec_module(definition.name)
    parser = argparse.ArgumentParser(prog=f"python -m {definition.process}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=definition.backends, default=TWIN)
    parser.add_argument("--port", default=definition.default_port, help=port_help)
    parser.add_argument("--rate", type=float, default=50.0, help="bus rate in Hz: read, publish, write")
    parser.add_argument("--command-rate", type=float, default=spec.CONTROL_RATE_HZ,
                        help="the rate commands arrive at, in Hz: sizes the safety filter's per-command step")
    parser.add_argument("--enable-torque", action="store_true", help="turn torque on at start")
    parser.add_argument("--name", default=f"{definition.name}_driver", help="the node name")
    twin = parser.add_argument_group("twin backend only")
    twin.add_argument("--task", default=definition.default_task, choices=tuple(spec.TASKS),
                      help="the twin task (scene, objects, reward)")
    twin.add_argument("--seed", type=int, default=0, help="the twin's first task seed")
    twin.add_argument("--cameras", default="", help="comma-separated twin cameras to publish, e.g. front")
    twin.add_argument("--camera-fps", type=float, default=10.0, help="twin camera publish rate in Hz")
    twin.add_argument("--twin-task", action="store_true", help="publish task_state, reward and success; "
                      "serve reset_task")
    twin.add_argument("--scripted-episodes", type=int, default=0,
                      help="play the task's scripted expert as the operator for this many episodes, then exit")
    twin.add_argument("--wait-for-recorder", action="store_true",
                      help="the scripted operator starts once a recorder listens to its episode events")
    twin.add_argument("--dynamics", default=None, help="a robot_rl/configs/sim/dynamics preset, e.g. perturbed")
    twin.add_argument("--policy", default=None, metavar="RUN_DIR",
                      help="act with the newest checkpoint of this fine-tuning run (sampled actions, hot reload)")
    twin.add_argument("--scripted-takeover", action="store_true",
                      help="with --policy and --twin-task: the task's expert takes over when the policy strays")
    twin.add_argument("--takeover-budget", type=int, default=None,
                      help="--scripted-takeover: the most ticks the expert may drive (default: no limit)")
    args, _ros_args = parser.parse_known_args(argv)
    if args.scripted_takeover and not (args.policy and args.twin_task):
        parser.error("--scripted-takeover takes over from the fine-tuning policy: it needs --policy and --twin-task")
    for key in ("rate", "command_rate", "camera_fps"):
        if not getattr(args, key) > 0:
            parser.error(f"--{key.replace('_', '-')}: expected a positive rate in Hz, found {getattr(args, key)}")
    args.cameras = tuple(c for c in args.cameras.split(",") if c)
    if args.backend != TWIN and any(getattr(args, k) for k in TWIN_ONLY):
        parser.error("--cameras, --twin-task and --scripted-episodes render or read the twin's state: they need "
                     "--backend twin (on hardware run robot_rl.drivers.camera_node and robot_rl.drivers.teleop)")
    if args.scripted_episodes < 0:
        parser.error(f"--scripted-episodes: expected 0 or more, found {args.scripted_episodes}")
    return args


def make_backend(definition: RobotDefinition, args: argparse.Namespace, image_size: tuple[int, int] = (128, 128)):
    return definition.make_backend(args.backend, port=args.port, task=getattr(args, "task", None),
                                   seed=getattr(args, "seed", 0), dynamics=getattr(args, "dynamics", None),
                                   command_rate=args.command_rate, image_size=image_size)


def make_node(definition: RobotDefinition, backend, args: argparse.Namespace, hardware: str | None = None):
    """A DriverNode for a connected backend, with the robot layer's limits, home pose and end-effector
    controller (robot_rl.drivers.<robot>.robot); ``hardware`` names the model in the diagnostics' id."""
    from robot_rl.drivers.driver_node import DriverNode

    return DriverNode(backend, **definition.driver_parts(args.command_rate), rate_hz=args.rate,
                      hardware_id=f"{hardware or definition.name}:{args.backend}:{args.port}", node_name=args.name)


def make_twin_companions(backend, args: argparse.Namespace) -> list:
    """The nodes that share the twin's physics besides the scripted operator: cameras, the task node."""
    from robot_rl.drivers.camera_node import twin_camera_node

    nodes = [twin_camera_node(backend, camera, args.camera_fps) for camera in args.cameras]
    if args.twin_task:
        from robot_rl.drivers.twin_task_node import TwinTaskNode

        # Faster than the commands: each recorded row takes the reward of the newest status after its action.
        nodes.append(TwinTaskNode(backend, rate_hz=4 * args.command_rate))
    return nodes


def scripted_operator_node(backend, args: argparse.Namespace):
    """A teleop node playing the twin task's scripted expert for ``scripted_episodes`` episodes; with
    ``wait_for_recorder`` it starts once someone listens to its episode events."""
    from robot_rl.drivers.teleop import ScriptedTeleop, TeleopNode

    operator = ScriptedTeleop.for_twin_backend(backend, episodes=args.scripted_episodes, seed=args.seed)
    device = WaitForListener(operator) if args.wait_for_recorder else operator
    teleop = TeleopNode(device, rate_hz=args.command_rate, deadband=0.0, node_name="teleop")
    if args.wait_for_recorder:
        device.listening = lambda: teleop.episode_pub.get_subscription_count() > 0
    return teleop, operator


def scripted_takeover_node(backend, args: argparse.Namespace, task_node):
    """A teleop node in takeover mode playing the task's expert when the policy strays; the task node's
    reset count tells it a new episode began."""
    from robot_rl.drivers.takeover import ScriptedTakeover
    from robot_rl.drivers.teleop import TeleopNode

    operator = ScriptedTakeover.for_twin_backend(backend, episode=lambda: task_node.resets, seed=args.seed,
                                                 max_human_ticks=args.takeover_budget)
    return TeleopNode(operator, rate_hz=args.command_rate, deadband=0.0, takeover=True, node_name="operator")


def finetune_policy_node(backend, policy, args: argparse.Namespace):
    """The policy node of a fine-tuning run on the twin: from the learner's first online checkpoint on,
    sampled actions at the command rate, each newer checkpoint reloaded within a second."""
    from robot_rl.drivers.policy_node import PolicyNode
    from robot_rl.drivers.policy_runner import twin_observation

    return PolicyNode(policy, twin_observation(backend, policy.cameras), rate_hz=args.command_rate,
                      deterministic=False, poll_checkpoints_s=1.0)


class WaitForListener:
    """A teleop device that stays idle until someone listens to ``episode_control`` (the recorder) and
    has had ``settle_s`` to receive the other streams: a scripted operator starts at its first tick, and a
    "start" that nobody hears, or that finds the recorder's streams still empty, loses the episode."""

    def __init__(self, device, settle_s: float = 2.0, clock=None):
        import time

        self.device, self.settle_s, self.clock = device, settle_s, clock or time.monotonic
        self.listening = lambda: True
        self._heard_since: float | None = None

    def connect(self) -> None:
        self.device.connect()

    def disconnect(self) -> None:
        self.device.disconnect()

    def read(self):
        from robot_rl.drivers.teleop import TeleopInput

        if self._heard_since is None and self.listening():
            self._heard_since = self.clock()
        if self._heard_since is None or self.clock() - self._heard_since < self.settle_s:
            return TeleopInput()
        return self.device.read()


def main(definition: RobotDefinition, argv=None, *, description: str | None = None,
         port_help: str = "the hardware's port or address", hardware: str | None = None) -> None:
    """Ctrl-C or SIGTERM, at any point, ends the process with status 0 once torque is off and the nodes are
    down: a signal never shuts the ROS context down under a running callback (robot_rl.drivers.spinning)."""
    import signal

    args = parse_args(definition, argv, description, port_help)
    from robot_rl.drivers.network import apply_dds_environment
    apply_dds_environment()  # before rclpy starts DDS: sockets on 127.0.0.1 unless opted out
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # while starting: SIGTERM as Ctrl-C
    try:
        run(definition, args, hardware)
    except KeyboardInterrupt:  # while starting: run() closed what it had opened
        pass


def run(definition: RobotDefinition, args: argparse.Namespace, hardware: str | None = None) -> None:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from robot_rl.drivers.backend import BackendFault
    from robot_rl.drivers.spinning import stop_on_signals

    policy = None
    if args.policy:  # nothing runs before the learner's first online checkpoint: no stream for a recorder to start on
        from robot_rl.drivers.policy_runner import load_checkpoint_policy
        from robot_rl.learner.actor import wait_until_acting

        wait_until_acting(args.policy)
        policy = load_checkpoint_policy(args.policy)  # read once; the twin renders at its image size
    backend = make_backend(definition, args, image_size=policy.image_size if policy else (128, 128))
    try:
        backend.connect()
    except BackendFault as err:
        backend.close()
        raise SystemExit(f"{definition.name} driver: {err}") from None
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # signals: see main
    nodes, operator = [], None
    try:
        nodes.append(make_node(definition, backend, args, hardware))
        nodes.extend(make_twin_companions(backend, args) if args.backend == TWIN else [])
        if args.scripted_episodes:
            teleop, operator = scripted_operator_node(backend, args)
            nodes.append(teleop)
        if policy is not None:
            nodes.append(finetune_policy_node(backend, policy, args))
        if args.scripted_takeover:
            from robot_rl.drivers.twin_task_node import TwinTaskNode

            task_node = next(n for n in nodes if isinstance(n, TwinTaskNode))
            nodes.append(scripted_takeover_node(backend, args, task_node))
        # The scripted operator cannot press the enable button.
        spin(nodes, enable_torque=args.enable_torque or bool(operator),
             until=(lambda: operator.finished) if operator else (lambda: False))
        if operator is not None:
            nodes[0].get_logger().info(f"scripted episodes (outcome, actions): {operator.outcomes}")
    finally:
        stop_on_signals()  # from here a second signal does not cut the torque-off short
        if nodes:
            nodes[0].shutdown_backend()  # torque off, physics thread stopped, port closed
        else:
            backend.close()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def spin(nodes: list, enable_torque: bool, until=lambda: False) -> None:
    """Torque on if asked, then spin the driver (first) and its companions until ``until()``, Ctrl-C,
    SIGTERM or shutdown."""
    from robot_rl.drivers.spinning import spin_until

    if enable_torque:
        nodes[0].get_logger().info(nodes[0].enable_torque(True)[1])
    spin_until(nodes, until)

