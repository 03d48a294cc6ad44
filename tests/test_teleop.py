"""Teleop nodes over real DDS on loopback: the keyboard through a pseudo-terminal, the scripted expert
driving the WidowX twin through a real DriverNode, and the missing-library errors of the hardware readers.

The SpaceMouse and gamepad readers themselves cannot be tested here: the machine has no input devices.
"""
from __future__ import annotations

import itertools
import os
import sys
import termios
import threading
import time

import numpy as np
import pytest
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, String

from robot_rl.drivers.driver_node import DriverNode
from robot_rl.drivers.safety import SafetyFilter, widowx_limits
from robot_rl.drivers.teleop import (
    TELEOP_QOS,
    KeyboardDevice,
    ScriptedTeleop,
    TeleopInput,
    TeleopNode,
    split_keys,
)
from robot_rl.drivers.teleop_devices import GamepadDevice, SpaceMouseDevice
from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.control import DeltaPoseController
from ros_helpers import wait_for

RATE_HZ = 5.0
SPEED = 0.5
_namespaces = itertools.count()


class Listener(Node):
    """What the driver and the recorder see: ee_delta_command and episode_control."""

    def __init__(self, context, namespace):
        super().__init__("teleop_test_listener", context=context, namespace=namespace)
        self._lock = threading.Lock()
        self.commands: list[tuple[float, np.ndarray]] = []
        self.events: list[str] = []
        self.create_subscription(Float64MultiArray, "ee_delta_command", self._on_command, TELEOP_QOS)
        self.create_subscription(String, "episode_control", self._on_event, TELEOP_QOS)

    def _on_command(self, msg):
        with self._lock:
            self.commands.append((time.monotonic(), np.array(msg.data)))

    def _on_event(self, msg):
        with self._lock:
            self.events.append(msg.data)

    def commands_since(self, since: float) -> list[np.ndarray]:
        with self._lock:
            return [c for t, c in self.commands if t >= since]

    def event_list(self) -> list[str]:
        with self._lock:
            return list(self.events)


class FixedDevice:
    """A device that always reports the same deltas (for the deadband)."""

    def __init__(self, delta):
        self.delta = np.asarray(delta, dtype=float)

    def read(self) -> TeleopInput:
        return TeleopInput(self.delta.copy())


def namespace() -> str:
    return f"/teleop_test_{os.getpid()}_{next(_namespaces)}"


@pytest.fixture
def pty_keyboard():
    """(keyboard device on the slave side, master fd to type into, the slave's terminal mode before)."""
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    device = KeyboardDevice(fd=slave, speed=SPEED)
    device.connect()
    try:
        yield device, master, before
    finally:
        device.disconnect()
        os.close(master)
        os.close(slave)


def keyboard_rig(context, spinner, device):
    ns = namespace()
    spinner.add(TeleopNode(device, rate_hz=RATE_HZ, context=context, namespace=ns))
    listener = spinner.add(Listener(context, ns))
    spinner.start()
    wait_for(lambda: listener.commands_since(0.0), 3.0, "a first ee_delta_command")
    return listener


def type_and_collect(listener: Listener, master: int, keys: bytes, ticks: int) -> list[np.ndarray]:
    """Type keys just after a command went out (mid-tick), then return the next ``ticks`` commands."""
    seen = len(listener.commands_since(0.0))
    wait_for(lambda: len(listener.commands_since(0.0)) > seen, 1.0, "the next tick")
    since = time.monotonic()
    os.write(master, keys)
    return wait_for(lambda: (c := listener.commands_since(since)) and len(c) >= ticks and c[:ticks],
                    ticks / RATE_HZ + 2.0, f"{ticks} commands after typing {keys!r}")


# --- keyboard -------------------------------------------------------------------------------------

def test_keyboard_w_moves_plus_x_for_one_tick_at_the_control_rate(context, spinner, pty_keyboard):
    device, master, _ = pty_keyboard
    listener = keyboard_rig(context, spinner, device)
    start = time.monotonic()
    time.sleep(2.0)
    count = len(listener.commands_since(start))
    assert 0.8 * 2 * RATE_HZ <= count <= 1.2 * 2 * RATE_HZ + 1, f"{count} commands in 2 s at {RATE_HZ} Hz"
    assert all(np.array_equal(c, [0, 0, 0, 0, 0, 0, 1]) for c in listener.commands_since(start)), \
        "idle commands must be zero deltas with the gripper open"

    first, second = type_and_collect(listener, master, b"w", 2)
    np.testing.assert_allclose(first, [SPEED, 0, 0, 0, 0, 0, 1.0])
    np.testing.assert_allclose(second, [0, 0, 0, 0, 0, 0, 1.0], err_msg="a key press lasts one tick")

    (command,) = type_and_collect(listener, master, b"aw\x1b[A", 1)  # +y, +x and arrow up (+pitch)
    np.testing.assert_allclose(command, [SPEED, SPEED, 0, 0, SPEED, 0, 1.0])
    (command,) = type_and_collect(listener, master, b"ws", 1)
    np.testing.assert_allclose(command, [0, 0, 0, 0, 0, 0, 1.0], err_msg="opposite keys cancel")


def test_keyboard_space_toggles_the_gripper_and_keys_control_episodes(context, spinner, pty_keyboard):
    device, master, _ = pty_keyboard
    listener = keyboard_rig(context, spinner, device)
    closed = type_and_collect(listener, master, b" ", 3)
    assert [c[6] for c in closed] == [-1.0, -1.0, -1.0], "space closes the gripper and it stays closed"
    reopened = type_and_collect(listener, master, b" ", 2)
    assert [c[6] for c in reopened] == [1.0, 1.0]

    for keys, expected in ((b"\r", "start"), (b"2", "stop"), (b"3", "discard"), (b"1", "start"),
                           (b"\x7f", "stop"), (b"x", "discard"), (b"4", "success")):
        before = len(listener.event_list())
        type_and_collect(listener, master, keys, 1)
        wait_for(lambda n=before: len(listener.event_list()) > n, 2.0, f"an episode event after {keys!r}")
        assert listener.event_list()[before:] == [expected], f"{keys!r} gave {listener.event_list()[before:]}"
    assert all(np.array_equal(c[:6], np.zeros(6)) for c in listener.commands_since(0.0)), \
        "episode and gripper keys must not move the arm"


def test_buttons_only_sends_episode_events_and_never_a_motion(context, spinner, pty_keyboard):
    """An operator labelling a policy's episodes: its keys must not command the arm the policy drives."""
    device, master, _ = pty_keyboard
    ns = namespace()
    spinner.add(TeleopNode(device, rate_hz=RATE_HZ, buttons_only=True, context=context, namespace=ns))
    listener = spinner.add(Listener(context, ns))
    spinner.start()
    time.sleep(0.5)
    os.write(master, b"w4")
    wait_for(lambda: listener.event_list() == ["success"], 3.0, "the success event")
    time.sleep(3.0 / RATE_HZ)
    assert listener.commands_since(0.0) == []


def test_keyboard_restores_the_terminal_mode_on_disconnect():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        device = KeyboardDevice(fd=slave)
        device.connect()
        during = termios.tcgetattr(slave)
        assert not during[3] & (termios.ECHO | termios.ICANON), "connect() must turn off echo and line mode"
        device.disconnect()
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_split_keys_keeps_an_incomplete_escape_sequence_for_the_next_read():
    assert split_keys("W\x1b[Dx\x1b[") == (["w", "LEFT", "x"], "\x1b[")
    assert split_keys("\x1b[C") == (["RIGHT"], "")
    assert split_keys("\x1bq") == (["q"], "")


def test_deadband_zeroes_small_deltas_and_passes_the_rest(context, spinner):
    ns = namespace()
    device = FixedDevice([0.04, -0.04, 0.5, -1.0, 1.7, 0.0])  # 1.7: clipped
    spinner.add(TeleopNode(device, rate_hz=RATE_HZ, deadband=0.05, context=context, namespace=ns))
    listener = spinner.add(Listener(context, ns))
    spinner.start()
    command = wait_for(lambda: listener.commands_since(0.0), 3.0, "an ee_delta_command")[0]
    np.testing.assert_allclose(command, [0, 0, 0.5, -1.0, 1.0, 0, 1.0])


# --- the scripted expert through a real driver node -----------------------------------------------

def test_scripted_teleop_drives_the_twin_arm_to_the_reach_targets(context, spinner):
    backend = WidowXTwinBackend(task="reach", seed=3)
    backend.connect()
    try:
        ns = namespace()
        safety = SafetyFilter(widowx_limits(control_period=1 / RATE_HZ), control_period=1 / RATE_HZ)
        driver = spinner.add(DriverNode(
            backend, safety, np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1]),
            ee_controller=DeltaPoseController(),
            opening_from_gripper=lambda finger: float(wx.width_to_opening(2 * finger)),
            context=context, namespace=ns))
        assert driver.enable_torque(True)[0]
        # seeds 8 and 9: targets 23 cm from the start pose and 43 cm from each other
        device = ScriptedTeleop.for_twin_backend(backend, episodes=2, seed=8, max_steps=30)
        ee_start = backend.env.ee_pos
        targets = []
        spinner.add(TeleopNode(device, rate_hz=RATE_HZ, deadband=0.0, context=context, namespace=ns))
        listener = spinner.add(Listener(context, ns))
        spinner.start()
        wait_for(lambda: device.in_episode or device.finished, 3.0, "the first episode")
        targets.append(backend.env.target_pos)
        wait_for(lambda: len(device.outcomes) >= 1, 12.0, "the first episode to end")
        ee_after_first = backend.env.ee_pos
        wait_for(lambda: device.finished, 12.0, "the second episode to end")
        targets.append(backend.env.target_pos)
        wait_for(lambda: listener.event_list().count("stop") == 2, 2.0, "the second stop event")
    finally:
        spinner.stop()
        backend.close()

    print(f"\nscripted episodes (outcome, actions): {device.outcomes}")
    assert listener.event_list() == ["start", "stop", "start", "stop"]
    assert [outcome for outcome, _ in device.outcomes] == ["success", "success"], device.outcomes
    assert np.linalg.norm(ee_after_first - ee_start) > 0.15, "the end effector did not move to the target"
    assert np.linalg.norm(ee_after_first - targets[0]) < 0.03, "the first episode ended away from its target"
    assert np.linalg.norm(targets[1] - targets[0]) > 0.01, "the second episode did not get a new target"
    assert backend.env.steps == 0, "the twin must move through the driver, never env.step()"
    commands = listener.commands_since(0.0)
    assert np.abs(np.array(commands)[:, :6]).max() > 0.2, "the expert sent no real motion"


# --- hardware readers without their libraries -----------------------------------------------------

@pytest.mark.parametrize("make_device, modules, package", [
    (SpaceMouseDevice, ("pyspacemouse", "hid"), "pip install pyspacemouse"),
    (GamepadDevice, ("pygame",), "pip install pygame"),
])
def test_hardware_readers_name_the_package_to_install(monkeypatch, make_device, modules, package):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError, installed or not
    device = make_device()
    with pytest.raises(ImportError, match=package) as info:
        device.connect()
    assert "\n" not in str(info.value)


# --- the RC car's gamepad: the deadman ------------------------------------------------------------------

class FakePad:
    """A joystick's levels as pygame reports them (axes -1..1, triggers -1 at rest), set by the test."""

    def __init__(self):
        self.axes = {0: 0.0, 2: -1.0, 5: -1.0}
        self.buttons: dict[int, int] = {}

    def get_axis(self, axis: int) -> float:
        return self.axes.get(axis, 0.0)

    def get_button(self, button: int) -> int:
        return self.buttons.get(button, 0)


def test_the_car_gamepad_gives_throttle_only_while_the_deadman_is_held():
    from robot_rl.drivers.rc_car.teleop import CarGamepad

    pad = FakePad()
    device = CarGamepad(joystick=pad, max_throttle=0.5)
    device.connect()
    assert device.read().action.tolist() == [0.0, 0.0]  # the triggers seen at rest
    pad.axes[5], pad.axes[0] = 1.0, -0.5  # full right trigger, stick half left
    released = device.read()
    assert released.action.tolist() == [0.5, 0.0], "no deadman, no throttle (steering still follows)"
    pad.buttons[4] = 1  # LB held
    assert device.read().action.tolist() == [0.5, 0.5]
    pad.axes[5], pad.axes[2] = -1.0, 1.0  # left trigger: reverse
    assert device.read().action.tolist() == [0.5, -0.5]
    pad.buttons[7] = 1
    assert device.read().start and not device.read().start, "a button is one press until released"
    with pytest.raises(ValueError, match="max_throttle"):
        CarGamepad(max_throttle=1.5)


def test_the_car_gamepad_refuses_takeover_naming_the_alternative():
    from robot_rl.drivers.rc_car.teleop import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--takeover"])
