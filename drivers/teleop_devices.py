"""Teleop hardware: a 3Dconnexion SpaceMouse and a gamepad, as TeleopDevices for robot_rl.drivers.teleop.

Each imports its library on connect(), so this module imports without them; a missing library gives a
one-line ImportError naming the package to install:

    SpaceMouseDevice   pip install pyspacemouse   (or pip install hidapi: raw HID, no pyspacemouse)
    GamepadDevice      pip install pygame

| device     | motion                                                          | buttons                         |
|------------|-----------------------------------------------------------------|---------------------------------|
| SpaceMouse | 6 axes: push/pull = x/y/z, tilt/twist = roll/pitch/yaw           | left: toggle gripper; right:    |
|            |                                                                 | start, then stop (alternating); |
|            |                                                                 | both together: discard          |
| gamepad    | left stick: x (up = forward), y (left = +y); triggers: z        | A: toggle gripper; Start: start |
|            | (right up, left down); right stick: yaw (left = +), pitch;      | B: stop; X: discard; Back: a    |
|            | bumpers: roll (right = +)                                       | failure; left stick click: a    |
|            |                                                                 | success; Y held: takeover       |
|            |                                                                 | (SDL numbering of an Xbox pad)  |

Takeover (``--takeover``, robot_rl.drivers.takeover): the SpaceMouse holds while deflected beyond the
takeover deadband and for 0.5 s after it comes back to rest (HIL-SERL's rule: touching it takes over);
the gamepad while its takeover button (Y) is held.

Buttons act on the press (the edge), once per press. The axis signs and order are the common mounting
(the operator faces the robot's +x); they are parameters because devices and set-ups differ: check
each axis with the arm's torque off before the first episode. Neither device could be tested here (the
test machine has no input devices); the tests check only the missing-library errors.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import numpy as np

from robot_rl.drivers.takeover import HoldOver
from robot_rl.drivers.teleop import EE_DELTA_DIM, TeleopDeviceError, TeleopInput


class ButtonEdges:
    """Turns button levels into presses: True once when a button goes down."""

    def __init__(self):
        self._previous: dict[int, bool] = {}

    def pressed(self, levels: Sequence[bool]) -> list[bool]:
        presses = [bool(level) and not self._previous.get(i, False) for i, level in enumerate(levels)]
        self._previous = {i: bool(level) for i, level in enumerate(levels)}
        return presses


def remap_axes(raw: Sequence[float], order: Sequence[int], signs: Sequence[float]) -> np.ndarray:
    """delta[i] = signs[i] * raw[order[i]], clipped to [-1, 1]."""
    raw = np.asarray(raw, dtype=float)
    return np.clip(np.asarray(signs, dtype=float) * raw[list(order)], -1.0, 1.0)


# --- SpaceMouse -----------------------------------------------------------------------------------

# 3Dconnexion's vendor ids: the Logitech-era one and its own.
SPACEMOUSE_VENDOR_IDS = (0x046D, 0x256F)
SPACEMOUSE_PRODUCT_IDS = {0xC626, 0xC627, 0xC628, 0xC62B, 0xC631, 0xC632, 0xC635, 0xC62E, 0xC62F,
                          0xC652, 0xC629}
HID_FULL_SCALE = 350.0  # raw axis counts at full deflection (about; devices differ a little)
NO_SPACEMOUSE = "spacemouse: none found (is it plugged in? may this user read /dev/hidraw*?)"
SPACEMOUSE_INSTALL = "SpaceMouseDevice needs pyspacemouse or hidapi: pip install pyspacemouse (or hidapi)"


class SpaceMouseDevice:
    """A SpaceMouse through pyspacemouse, or raw HID reports through hidapi when pyspacemouse is missing.

    Raw axes are (x, y, z, roll, pitch, yaw) as pyspacemouse names them; the default remapping sends
    pushing away from the operator to +x, left to +y, lifting to +z.
    """

    def __init__(self, library: str = "auto", axis_order: Sequence[int] = (1, 0, 2, 4, 3, 5),
                 axis_signs: Sequence[float] = (1, -1, 1, 1, -1, -1), scale: float = 1.0,
                 takeover_deadband: float = 0.05, hold_s: float = 0.5):
        if library not in ("auto", "pyspacemouse", "hidapi"):
            raise ValueError(f"library: expected 'auto', 'pyspacemouse' or 'hidapi', found {library!r}")
        self.library, self.axis_order, self.axis_signs, self.scale = library, axis_order, axis_signs, scale
        self._reader = None
        self._edges = ButtonEdges()
        self._recording = False
        self.takeover_deadband, self._held = takeover_deadband, HoldOver(hold_s)

    def connect(self) -> None:
        self._reader = self._open_reader()
        self._edges, self._recording = ButtonEdges(), False

    def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def read(self) -> TeleopInput:
        if self._reader is None:
            raise TeleopDeviceError("spacemouse: not connected; call connect() first")
        axes, buttons = self._reader.read()
        delta = self.scale * remap_axes(axes, self.axis_order, self.axis_signs)
        left, right = (list(buttons) + [False, False])[:2]
        both = left and right
        left_press, right_press = self._edges.pressed([left, right])
        held = self._held.update(bool(np.any(np.abs(delta) >= self.takeover_deadband)))
        return TeleopInput(delta, gripper_toggle=left_press and not both, held=held,
                           discard=both and (left_press or right_press),
                           **self._start_or_stop(right_press and not both))

    def _start_or_stop(self, pressed: bool) -> dict:
        if not pressed:
            return {}
        self._recording = not self._recording
        return {"start": True} if self._recording else {"stop": True}

    def _open_reader(self):
        if self.library in ("auto", "pyspacemouse"):
            try:
                import pyspacemouse
            except ImportError:
                if self.library == "pyspacemouse":
                    raise ImportError("SpaceMouseDevice(library='pyspacemouse') needs pyspacemouse: "
                                      "pip install pyspacemouse") from None
            else:
                return _PySpaceMouseReader(pyspacemouse)
        try:
            import hid
        except ImportError:
            raise ImportError(SPACEMOUSE_INSTALL) from None
        return _HidSpaceMouseReader(hid)


class _PySpaceMouseReader:
    def __init__(self, pyspacemouse):
        self._lib = pyspacemouse
        self._device = pyspacemouse.open()
        if not self._device:
            raise TeleopDeviceError(NO_SPACEMOUSE)

    def read(self) -> tuple[list[float], list[bool]]:
        state = self._device.read() if hasattr(self._device, "read") else self._lib.read()
        buttons = getattr(state, "buttons", None) or getattr(state, "button", None) or []
        return [state.x, state.y, state.z, state.roll, state.pitch, state.yaw], [bool(b) for b in buttons]

    def close(self) -> None:
        close = getattr(self._device, "close", None) or self._lib.close
        close()


class _HidSpaceMouseReader:
    """Raw HID: report 1 = translation (and, on newer models, rotation too), 2 = rotation, 3 = buttons."""

    def __init__(self, hid):
        info = next((d for d in hid.enumerate() if d["vendor_id"] in SPACEMOUSE_VENDOR_IDS
                     and d["product_id"] in SPACEMOUSE_PRODUCT_IDS), None)
        if info is None:
            raise TeleopDeviceError(NO_SPACEMOUSE)
        self._device = hid.device()
        try:
            self._device.open_path(info["path"])
        except OSError as err:
            raise TeleopDeviceError(f"spacemouse: cannot open {info['path']!r}: {err}") from None
        self._device.set_nonblocking(True)
        self._axes, self._buttons = np.zeros(EE_DELTA_DIM), [False, False]

    def read(self) -> tuple[list[float], list[bool]]:
        while report := self._device.read(64):  # drain: keep the newest of each kind
            self._apply(bytes(report))
        return self._axes.tolist(), list(self._buttons)

    def _apply(self, report: bytes) -> None:
        kind, payload = report[0], report[1:]
        if kind in (1, 2) and len(payload) >= 6:
            count = 6 if kind == 1 and len(payload) >= 12 else 3  # newer models: all six axes in report 1
            values = np.array(struct.unpack(f"<{count}h", payload[:2 * count])) / HID_FULL_SCALE
            start = 3 if kind == 2 else 0
            self._axes[start:start + count] = np.clip(values, -1.0, 1.0)
        elif kind == 3 and payload:
            self._buttons = [bool(payload[0] & 1), bool(payload[0] & 2)]

    def close(self) -> None:
        self._device.close()


# --- gamepad --------------------------------------------------------------------------------------

class GamepadDevice:
    """A gamepad through pygame's joystick module (SDL2's numbering of an Xbox-style pad by default)."""

    def __init__(self, index: int = 0, *, left_x: int = 0, left_y: int = 1, left_trigger: int = 2,
                 right_x: int = 3, right_y: int = 4, right_trigger: int = 5, button_gripper: int = 0,
                 button_stop: int = 1, button_discard: int = 2, button_start: int = 7,
                 bumper_left: int = 4, bumper_right: int = 5, button_takeover: int = 3, button_failure: int = 6,
                 button_success: int = 9, scale: float = 1.0):
        self.index, self.scale = index, scale
        self.sticks = (left_x, left_y, right_x, right_y)
        self.triggers = (left_trigger, right_trigger)
        self.buttons = (button_gripper, button_start, button_stop, button_discard, bumper_left, bumper_right,
                        button_takeover, button_failure, button_success)
        self._pygame = self._joystick = None
        self._edges = ButtonEdges()
        self._triggers_seen_at_rest = [False, False]

    def connect(self) -> None:
        try:
            os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
            os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")  # no window has focus
            import pygame
        except ImportError:
            raise ImportError("GamepadDevice needs pygame: pip install pygame") from None
        pygame.init()
        pygame.joystick.init()
        if pygame.joystick.get_count() <= self.index:
            raise TeleopDeviceError(f"gamepad: joystick {self.index} not found "
                                    f"({pygame.joystick.get_count()} connected)")
        self._pygame, self._joystick = pygame, pygame.joystick.Joystick(self.index)
        self._joystick.init()
        self._edges, self._triggers_seen_at_rest = ButtonEdges(), [False, False]

    def disconnect(self) -> None:
        if self._pygame is not None:
            self._pygame.joystick.quit()
            self._pygame.quit()
            self._pygame = self._joystick = None

    def read(self) -> TeleopInput:
        if self._joystick is None:
            raise TeleopDeviceError("gamepad: not connected; call connect() first")
        self._pygame.event.pump()
        gripper, start, stop, discard, bumper_left, bumper_right, takeover, failure, success = (
            self._joystick.get_button(b) for b in self.buttons)
        presses = self._edges.pressed([gripper, start, stop, discard, failure, success])
        return TeleopInput(self.scale * self._delta(bumper_left, bumper_right), gripper_toggle=presses[0],
                           start=presses[1], stop=presses[2], discard=presses[3], failure=presses[4],
                           success=presses[5], held=bool(takeover))

    def _delta(self, bumper_left: bool, bumper_right: bool) -> np.ndarray:
        left_x, left_y, right_x, right_y = (self._joystick.get_axis(a) for a in self.sticks)
        z = self._trigger(1) - self._trigger(0)
        roll = float(bool(bumper_right)) - float(bool(bumper_left))
        return np.clip([-left_y, -left_x, z, roll, -right_y, -right_x], -1.0, 1.0)

    def _trigger(self, which: int) -> float:
        """0 released .. 1 fully pressed. SDL reports a trigger as 0 (half pressed) until its first event,
        so a trigger counts only once it has been seen at rest (-1)."""
        raw = self._joystick.get_axis(self.triggers[which])
        if raw < -0.9:
            self._triggers_seen_at_rest[which] = True
        return (raw + 1.0) / 2.0 if self._triggers_seen_at_rest[which] else 0.0
