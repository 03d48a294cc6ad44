"""Teleop: a device (keyboard, SpaceMouse, gamepad, or the scripted expert) drives end-effector deltas.

    python -m robot_rl.drivers.teleop --device keyboard --rate 5
    python -m robot_rl.drivers.teleop --device spacemouse          # pip install pyspacemouse (or hidapi)
    python -m robot_rl.drivers.teleop --device gamepad             # pip install pygame
    python -m robot_rl.drivers.teleop --device scripted --task reach --episodes 3   # no hardware at all
    python -m robot_rl.drivers.teleop --device keyboard --buttons-only   # episode events only (a policy acts)
    python -m robot_rl.drivers.teleop --device spacemouse --takeover     # take over from a policy while held

``TeleopNode`` reads a ``TeleopDevice`` once per control tick and publishes:

| name               | kind    | type                           | rate                                | QoS                         |
|--------------------|---------|--------------------------------|-------------------------------------|-----------------------------|
| `ee_delta_command` | publish | std_msgs/Float64MultiArray (7) | the control rate (default 5 Hz)     | reliable, volatile, last 10 |
| `episode_control`  | publish | std_msgs/String                | event: start, stop, success, discard, failure | reliable, volatile, last 10 |
| `intervention`     | publish | std_msgs/Bool (``--takeover``)  | the control rate                    | reliable, volatile, last 10 |
| `ee_command_applied` | subscr. | sensor_msgs/JointState (7)    | ``--takeover``: the driver's answers | reliable, volatile, last 10 |

- `ee_delta_command`: dx, dy, dz, droll, dpitch, dyaw in [-1, 1] (normalized; the driver scales them,
  the WidowX by MAX_DELTA_POS / MAX_DELTA_ROT), then the gripper: +1 open, -1 closed. Deltas smaller
  than the deadband (default 0.05: a SpaceMouse or a stick at rest is never exactly 0) are 0, the others
  pass unchanged (not rescaled: a key's or an expert's value arrives as sent). The gripper is a latched
  state the device toggles (it starts open). One message every tick, zeros included; if this node dies
  the driver's watchdog holds the arm. ``buttons_only`` (``--buttons-only``): nothing on this topic, for an
  operator who labels episodes while a policy acts (``robot-rl finetune`` on hardware). ``takeover``
  (``--takeover``): ``intervention`` every tick, and commands only while the operator holds the device;
  the policy yields meanwhile (robot_rl.drivers.takeover: the design, and what "holding" is per device).
- `episode_control`: what the operator asked of the recorder. "start" begins an episode, "stop" ends and
  keeps it, "success" ends and keeps it as a success (on hardware the recorder rewards its last step),
  "discard" ends and drops it. When several come in one tick they go out in the order success, stop,
  discard, start (end the old episode before beginning the next). "failure" labels the current step a
  failure (reward 0, terminal) and ends the episode; "success" at any time labels the current step a
  success (reward 1, terminal) and ends it. Volatile: a recorder that starts
  later does not see earlier events.

Keyboard keys (a terminal in cbreak mode: no echo, Ctrl-C still stops the node):

| key                       | action               | key                       | action               |
|---------------------------|----------------------|---------------------------|----------------------|
| w / s                     | +x / -x (forward)    | u / o                     | +roll / -roll        |
| a / d                     | +y / -y (left)       | i / k, arrow up / down    | +pitch / -pitch      |
| r / f                     | +z / -z (up)         | j / l, arrow left / right | +yaw / -yaw          |
| space                     | toggle the gripper   | Enter or 1                | start an episode     |
| 2 or Backspace            | stop (keep) episode  | 3 or x                    | discard the episode  |
| 4                         | stop: a success      | 5                         | stop: a failure      |
| Tab                       | take over / hand back (``--takeover``) |         |                      |

Terminals send no key-up events, so each key press moves for one control tick; holding a key moves
continuously through the terminal's auto-repeat (typically 30 presses/s after a 0.5 s delay: the first
tick moves, then a pause, then steady motion). Keys pressed in one tick add up per axis (w and s
cancel), and each motion axis is at most ``speed`` (default 0.5: 2.5 cm per tick on the WidowX).

``ScriptedTeleop`` plays a twin task's scripted expert as if it were an operator, for tests and for
demos without hardware (see its docstring). SpaceMouse and gamepad readers: robot_rl.drivers.teleop_devices.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import select
import sys
import termios
import tty
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String

from robot_rl.drivers.spinning import spin_until
from robot_rl.drivers.twin_reset import reset_task_keeping_robot

TELEOP_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
EE_DELTA_DIM = 6
EPISODE_START, EPISODE_STOP, EPISODE_DISCARD, EPISODE_SUCCESS, EPISODE_FAILURE = (
    "start", "stop", "discard", "success", "failure")
GRIPPER_OPEN, GRIPPER_CLOSED = 1.0, -1.0


class TeleopDeviceError(RuntimeError):
    """The device is missing, unplugged, or cannot be read."""


@dataclass
class TeleopInput:
    """One control tick of operator input."""

    delta: np.ndarray = field(default_factory=lambda: np.zeros(EE_DELTA_DIM))  # in [-1, 1]
    gripper_toggle: bool = False
    start: bool = False
    stop: bool = False
    discard: bool = False
    success: bool = False  # stop, and the operator says the task was done
    failure: bool = False  # stop, and the operator says the task failed at this step
    held: bool = False     # takeover: the operator holds the device (its motion replaces the policy's)
    gripper_open: bool | None = None  # an absolute gripper (scripted devices); None: gripper_toggle latches


class TeleopDevice(Protocol):
    def connect(self) -> None: ...

    def read(self) -> TeleopInput:
        """Everything since the last read; never blocks."""

    def disconnect(self) -> None: ...


def apply_deadband(delta: np.ndarray, deadband: float) -> np.ndarray:
    """Deltas clipped to [-1, 1], with those smaller than the deadband set to 0."""
    delta = np.clip(np.asarray(delta, dtype=float), -1.0, 1.0)
    return np.where(np.abs(delta) < deadband, 0.0, delta)


# --- the node -------------------------------------------------------------------------------------

class TeleopNode(Node):
    """Reads the device every control tick; publishes ee_delta_command and episode_control.

    The caller connects and disconnects the device (the node only reads it)."""

    def __init__(self, device: TeleopDevice, *, rate_hz: float = 5.0, deadband: float = 0.05,
                 buttons_only: bool = False, takeover: bool = False, node_name: str = "teleop", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        if not rate_hz > 0:
            raise ValueError(f"rate_hz: expected a positive control rate in Hz, found {rate_hz}")
        if not 0 <= deadband < 1:
            raise ValueError(f"deadband: expected a value in [0, 1), found {deadband}")
        self.device, self.rate_hz, self.deadband = device, float(rate_hz), float(deadband)
        if buttons_only and takeover:
            raise ValueError("buttons_only and takeover: choose one (buttons_only never moves the arm)")
        self.gripper_open = True
        self.takeover, self.holding, self.applied_gripper = takeover, False, None
        self.ee_delta_pub = None if buttons_only else \
            self.create_publisher(Float64MultiArray, "ee_delta_command", TELEOP_QOS)
        if takeover:
            self.intervention_pub = self.create_publisher(Bool, "intervention", TELEOP_QOS)
            self.create_subscription(JointState, "ee_command_applied", self._on_applied, TELEOP_QOS)
        self.episode_pub = self.create_publisher(String, "episode_control", TELEOP_QOS)
        self.timer = self.create_timer(1.0 / self.rate_hz, self.tick)

    def tick(self) -> None:
        try:
            teleop_input = self.device.read()
        except TeleopDeviceError as err:  # publish nothing: the driver's watchdog holds the arm
            self.get_logger().error(f"teleop device: {err}", throttle_duration_sec=2.0)
            return
        self._publish_episode_events(teleop_input)
        if self.takeover:
            began = teleop_input.held and not self.holding
            self.holding = bool(teleop_input.held)
            self.intervention_pub.publish(Bool(data=self.holding))
            if began and self.applied_gripper is not None:  # take the gripper as it is: no jump
                self.gripper_open = self.applied_gripper >= 0.0
        if teleop_input.gripper_open is not None:
            self.gripper_open = bool(teleop_input.gripper_open)
        elif teleop_input.gripper_toggle:
            self.gripper_open = not self.gripper_open
        if self.ee_delta_pub is not None and (self.holding or not self.takeover):
            self.ee_delta_pub.publish(Float64MultiArray(data=self.command(teleop_input).tolist()))

    def _on_applied(self, msg: JointState) -> None:
        if len(msg.position) == EE_DELTA_DIM + 1:
            self.applied_gripper = float(msg.position[-1])

    def command(self, teleop_input: TeleopInput) -> np.ndarray:
        gripper = GRIPPER_OPEN if self.gripper_open else GRIPPER_CLOSED
        return np.append(apply_deadband(teleop_input.delta, self.deadband), gripper)

    def _publish_episode_events(self, teleop_input: TeleopInput) -> None:
        for event, asked in ((EPISODE_SUCCESS, teleop_input.success), (EPISODE_FAILURE, teleop_input.failure),
                             (EPISODE_STOP, teleop_input.stop),
                             (EPISODE_DISCARD, teleop_input.discard), (EPISODE_START, teleop_input.start)):
            if asked:
                self.get_logger().info(f"episode {event}")
                self.episode_pub.publish(String(data=event))


# --- keyboard -------------------------------------------------------------------------------------

MOTION_KEYS = {  # key -> (axis, sign); axes dx, dy, dz, droll, dpitch, dyaw
    "w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
    "u": (3, 1), "o": (3, -1), "i": (4, 1), "k": (4, -1), "j": (5, 1), "l": (5, -1),
    "UP": (4, 1), "DOWN": (4, -1), "LEFT": (5, 1), "RIGHT": (5, -1),
}
GRIPPER_KEYS = {" "}
START_KEYS = {"\n", "\r", "1"}
STOP_KEYS = {"2", "\x7f", "\x08"}  # Backspace sends DEL (0x7f) on most terminals, BS on some
DISCARD_KEYS = {"3", "x"}
SUCCESS_KEYS = {"4"}
FAILURE_KEYS = {"5"}
TAKEOVER_KEYS = {"\t"}
ARROWS = {"A": "UP", "B": "DOWN", "C": "RIGHT", "D": "LEFT"}
ESC = "\x1b"


def split_keys(text: str) -> tuple[list[str], str]:
    """Keys in ``text`` (arrow escape sequences as "UP" etc.), and an incomplete escape sequence left at
    its end (to complete with the next read)."""
    keys, i = [], 0
    while i < len(text):
        if text[i] != ESC:
            keys.append(text[i].lower())
            i += 1
        elif len(text) - i < 3 and text[i + 1:] in ("", "[", "O"):
            return keys, text[i:]
        elif text[i + 1] in "[O" and text[i + 2] in ARROWS:  # CSI (normal) or SS3 (application mode)
            keys.append(ARROWS[text[i + 2]])
            i += 3
        else:  # Escape alone, or a sequence this reader does not use: skip the escape byte
            i += 1
    return keys, ""


class KeyboardDevice:
    """Keys from a terminal file descriptor (stdin by default), read without blocking."""

    HELP = ("keys: w/s x, a/d y, r/f z, u/o roll, i/k or up/down pitch, j/l or left/right yaw, "
            "space gripper, Enter/1 start, 2/Backspace stop, 4 stop as a success, 5 stop as a failure, "
            "3/x discard, Tab take over / hand back (--takeover), Ctrl-C quit")

    def __init__(self, fd: int | None = None, speed: float = 0.5):
        if not 0 < speed <= 1:
            raise ValueError(f"speed: expected a fraction of the full delta in (0, 1], found {speed}")
        self.fd, self.speed = fd, float(speed)
        self._saved_mode: list | None = None
        self._pending = ""
        self.held = False  # Tab toggles the takeover

    def connect(self) -> None:
        if self.fd is None:
            self.fd = sys.stdin.fileno()
        if not os.isatty(self.fd):
            raise TeleopDeviceError(f"keyboard: file descriptor {self.fd} is not a terminal; "
                                    "run the keyboard teleop in an interactive terminal")
        self._saved_mode = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd, termios.TCSANOW)  # no echo, no line buffering; Ctrl-C still works
        self._pending = ""

    def disconnect(self) -> None:
        if self._saved_mode is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved_mode)
            self._saved_mode = None

    def read(self) -> TeleopInput:
        if self._saved_mode is None:
            raise TeleopDeviceError("keyboard: not connected; call connect() first")
        text = self._pending + self._drain().decode("utf-8", errors="ignore")
        keys, self._pending = split_keys(text)
        return self.input_from_keys(keys)

    def input_from_keys(self, keys: list[str]) -> TeleopInput:
        delta = np.zeros(EE_DELTA_DIM)
        for key in keys:
            if key in MOTION_KEYS:
                axis, sign = MOTION_KEYS[key]
                delta[axis] += sign
        toggles = sum(key in GRIPPER_KEYS for key in keys)
        self.held ^= sum(key in TAKEOVER_KEYS for key in keys) % 2 == 1
        return TeleopInput(self.speed * np.clip(delta, -1.0, 1.0), gripper_toggle=toggles % 2 == 1, held=self.held,
                           failure=any(k in FAILURE_KEYS for k in keys),
                           start=any(k in START_KEYS for k in keys), stop=any(k in STOP_KEYS for k in keys),
                           discard=any(k in DISCARD_KEYS for k in keys), success=any(k in SUCCESS_KEYS for k in keys))

    def _drain(self) -> bytes:
        chunks = []
        while select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 1024)
            if not chunk:  # end of file: the terminal went away
                break
            chunks.append(chunk)
        return b"".join(chunks)


# --- the scripted expert as an operator -----------------------------------------------------------

class ScriptedTeleop:
    """Plays a twin task's scripted expert against the twin the driver node runs, as an operator would.

    Each episode, ``episodes`` times: a new task drawn with env.reset(seed=seed + k) for the k-th episode
    and "start", then one expert action per tick (the expert reads the twin's true state through
    ``env``; its gripper command becomes toggles of the node's latched gripper), then "stop" on the
    first tick that finds the task solved or ``max_steps`` actions sent (``outcomes`` records which).
    The next episode starts on the following tick. Afterwards ``finished`` is True and it sends zeros.

    ``env`` is the twin the driver's backend steps in its physics thread (WidowXTwinBackend.env, in
    process; see ``for_twin_backend``); ``lock`` is the lock that thread holds around each physics step,
    taken here around every read of the twin and around the reset, so neither sees a half-stepped state.

    The reset keeps the robot where it is (``keep_robot_pose``, default): env.reset(seed) draws the new
    task (objects, target, dynamics), then the robot's joints and actuator set-points are put back. A
    real arm cannot jump, and the driver node would not let the twin's: its safety filter holds the last
    target and would pull a teleported arm straight back. Episodes therefore start where the last ended.
    ``keep_robot_pose=False`` resets the robot too: only for an env that no driver node holds.
    """

    def __init__(self, env, *, lock=None, episodes: int = 1, seed: int = 0, noise: float = 0.0,
                 max_steps: int | None = None, keep_robot_pose: bool = True):
        from robot_rl.sim import make_expert

        if episodes < 1:
            raise ValueError(f"episodes: expected at least 1, found {episodes}")
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.expert = make_expert(self.env, noise=noise, seed=seed)
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.episodes, self.seed = int(episodes), int(seed)
        self.max_steps = int(max_steps or self.env.max_steps)
        self.keep_robot_pose = keep_robot_pose
        self.outcomes: list[tuple[str, int]] = []  # ("success" | "step_limit", actions) per episode
        self.steps = 0
        self._in_episode = False
        self._gripper_open = True  # mirrors the node's latched gripper, which starts open

    @classmethod
    def for_twin_backend(cls, backend, **kwargs) -> ScriptedTeleop:
        """For a twin backend in this process: its env, and its physics lock (``lock``) when it has one."""
        return cls(backend.env, lock=getattr(backend, "lock", None), **kwargs)

    @property
    def in_episode(self) -> bool:
        return self._in_episode

    @property
    def finished(self) -> bool:
        return len(self.outcomes) >= self.episodes

    def connect(self) -> None:
        """Nothing to open: the twin is the driver backend's."""

    def disconnect(self) -> None:
        """Nothing to close."""

    def read(self) -> TeleopInput:
        with self.lock:
            if self.finished:
                return TeleopInput()
            if not self._in_episode:
                self._begin_episode()
                return self._expert_input(start=True)
            outcome = self._episode_outcome()
            if outcome is None:
                return self._expert_input()
            self._end_episode(outcome)
            return TeleopInput(stop=True)

    def _begin_episode(self) -> None:
        self._reset_task(self.seed + len(self.outcomes))
        self.expert.reset()
        self.steps, self._in_episode = 0, True

    def _episode_outcome(self) -> str | None:
        if self.env.evaluate().success:
            return "success"
        return "step_limit" if self.steps >= self.max_steps else None

    def _end_episode(self, outcome: str) -> None:
        self.outcomes.append((outcome, self.steps))
        self._in_episode = False

    def _expert_input(self, start: bool = False) -> TeleopInput:
        # The expert reads the twin's state through env; the observation is what its interface asks for.
        action = self.expert(self.env.observe(cameras=()))
        self.steps += 1
        wants_open = bool(action[-1] >= 0)
        toggle = wants_open != self._gripper_open
        self._gripper_open = wants_open
        return TeleopInput(np.asarray(action[:EE_DELTA_DIM], dtype=float), gripper_toggle=toggle, start=start)

    def _reset_task(self, seed: int) -> None:
        if self.keep_robot_pose:
            reset_task_keeping_robot(self.env, seed)
        else:
            self.env.reset(seed=seed)


# --- command line ---------------------------------------------------------------------------------

DEVICES = ("keyboard", "spacemouse", "gamepad", "scripted")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.drivers.teleop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=DEVICES, default="keyboard")
    parser.add_argument("--rate", type=float, default=5.0, help="control rate in Hz (Bridge: 5)")
    parser.add_argument("--deadband", type=float, default=None,
                        help="deltas below this are 0 (default 0.05; 0 for the scripted expert)")
    parser.add_argument("--speed", type=float, default=0.5, help="keyboard: delta per key press, in (0, 1]")
    parser.add_argument("--task", default="reach", help="scripted: the WidowX twin task")
    parser.add_argument("--episodes", type=int, default=3, help="scripted: episodes to play")
    parser.add_argument("--seed", type=int, default=0, help="scripted: seed of the first episode")
    parser.add_argument("--buttons-only", action="store_true",
                        help="publish episode events only, no motion (an operator labelling a policy's episodes)")
    parser.add_argument("--takeover", action="store_true",
                        help="take over from a policy while the device is held (robot_rl.drivers.takeover)")
    parser.add_argument("--name", default="teleop", help="the node name")
    args, _ros_args = parser.parse_known_args(argv)
    if not args.rate > 0:
        parser.error(f"--rate: expected a positive rate in Hz, found {args.rate}")
    if args.deadband is None:
        args.deadband = 0.0 if args.device == "scripted" else 0.05
    return args


def make_device(args: argparse.Namespace) -> TeleopDevice:
    if args.device == "keyboard":
        return KeyboardDevice(speed=args.speed)
    from robot_rl.drivers import teleop_devices

    if args.device == "spacemouse":
        return teleop_devices.SpaceMouseDevice()
    return teleop_devices.GamepadDevice()


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.device == "scripted":  # the expert reads the twin's state: it plays in the twin's process
        from robot_rl.drivers.widowx import node

        return node.main(["--backend", "twin", "--task", args.task, "--seed", str(args.seed), "--command-rate",
                          str(args.rate), "--scripted-episodes", str(args.episodes)])
    from robot_rl.drivers.network import apply_dds_environment
    apply_dds_environment()  # before rclpy starts DDS: sockets on 127.0.0.1 unless opted out
    import rclpy

    rclpy.init()
    try:
        _run_device(make_device(args), args)
    except (ImportError, TeleopDeviceError) as err:
        raise SystemExit(f"teleop: {err}") from None
    finally:
        rclpy.try_shutdown()


def _run_device(device: TeleopDevice, args: argparse.Namespace) -> None:
    device.connect()
    node = None
    try:
        node = TeleopNode(device, rate_hz=args.rate, deadband=args.deadband, buttons_only=args.buttons_only,
                          takeover=args.takeover, node_name=args.name)
        if isinstance(device, KeyboardDevice):
            node.get_logger().info(KeyboardDevice.HELP)
        spin_until([node], until=lambda: False)
    finally:
        if node is not None:
            node.destroy_node()
        device.disconnect()


if __name__ == "__main__":
    main()
