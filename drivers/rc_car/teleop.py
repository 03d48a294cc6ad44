"""Teleop for the RC car: a gamepad drives (steering, throttle), and only while its deadman is held.

    python -m robot_rl.drivers.rc_car.teleop --device gamepad --rate 20

``CarTeleopNode`` reads a ``CarGamepad`` once per control tick and publishes the normalized action on
`ee_delta_command` (the car's process takes it: steering x 0.38 rad, throttle x 3 m/s) and the operator's
episode events on `episode_control`, both as robot_rl.drivers.teleop does for the arms (same QoS, same
event order: success, failure, stop, discard, start).

Gamepad (SDL2's numbering of an Xbox-style pad): **hold LB, the deadman**, to drive: without it the throttle
is 0 whatever the triggers say, and the car's watchdog and safety core do the rest (no deadman, no
throttle). Left stick x: steering (left is +). Right trigger: forward, left trigger: reverse, each scaled by
``max_throttle`` (0.5 by default: half the twin's 3 m/s). Start: start an episode; B: stop (keep); X: discard;
Back: a failure; the right stick's click: a success. ``--buttons-only``: episode events only, no motion (an
operator labelling a policy's episodes).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

from robot_rl.drivers.teleop_devices import ButtonEdges, GamepadDevice


@dataclass
class CarInput:
    action: np.ndarray = field(default_factory=lambda: np.zeros(2))  # (steering, throttle) in [-1, 1]
    start: bool = False
    stop: bool = False
    discard: bool = False
    success: bool = False
    failure: bool = False


class CarGamepad(GamepadDevice):
    """The car's mapping over GamepadDevice's pygame joystick (connect, disconnect, trigger rest handling)."""

    def __init__(self, index: int = 0, *, steer_axis: int = 0, deadman: int = 4, max_throttle: float = 0.5,
                 button_start: int = 7, button_stop: int = 1, button_discard: int = 2, button_failure: int = 6,
                 button_success: int = 9, joystick=None):
        super().__init__(index)
        self._opened = joystick  # an already opened joystick (anything with get_axis / get_button): no pygame
        if not 0 < max_throttle <= 1:
            raise ValueError(f"max_throttle: expected a fraction of full throttle in (0, 1], found {max_throttle}")
        self.steer_axis, self.deadman, self.max_throttle = steer_axis, deadman, float(max_throttle)
        self.car_buttons = (button_start, button_stop, button_discard, button_success, button_failure)
        self._car_edges = ButtonEdges()

    def connect(self) -> None:
        if self._opened is None:
            super().connect()
        else:
            self._joystick = self._opened
        self._car_edges, self._triggers_seen_at_rest = ButtonEdges(), [False, False]

    def read(self) -> CarInput:
        from robot_rl.drivers.teleop import TeleopDeviceError

        if self._joystick is None:
            raise TeleopDeviceError("gamepad: not connected; call connect() first")
        if self._pygame is not None:
            self._pygame.event.pump()
        joystick = self._joystick
        start, stop, discard, success, failure = self._car_edges.pressed(
            [joystick.get_button(b) for b in self.car_buttons])
        steering = float(np.clip(-joystick.get_axis(self.steer_axis), -1.0, 1.0))
        throttle = self.max_throttle * (self._trigger(1) - self._trigger(0))  # read always: triggers seen at rest
        if not joystick.get_button(self.deadman):  # the deadman: no hold, no throttle
            throttle = 0.0
        return CarInput(np.array([steering, throttle]), start=start, stop=stop, discard=discard, success=success,
                        failure=failure)


def _node_class():
    from rclpy.node import Node
    from std_msgs.msg import Float64MultiArray, String

    from robot_rl.drivers.teleop import (
        EPISODE_DISCARD,
        EPISODE_FAILURE,
        EPISODE_START,
        EPISODE_STOP,
        EPISODE_SUCCESS,
        TELEOP_QOS,
    )

    class CarTeleopNode(Node):
        def __init__(self, device, *, rate_hz: float = 20.0, buttons_only: bool = False, node_name: str = "teleop",
                     **node_kwargs):
            super().__init__(node_name, **node_kwargs)
            self.device, self.buttons_only = device, buttons_only
            self.action_pub = self.create_publisher(Float64MultiArray, "ee_delta_command", TELEOP_QOS)
            self.episode_pub = self.create_publisher(String, "episode_control", TELEOP_QOS)
            self.timer = self.create_timer(1.0 / rate_hz, self.tick)

        def tick(self) -> None:
            car_input = self.device.read()
            for event, asked in ((EPISODE_SUCCESS, car_input.success), (EPISODE_FAILURE, car_input.failure),
                                 (EPISODE_STOP, car_input.stop), (EPISODE_DISCARD, car_input.discard),
                                 (EPISODE_START, car_input.start)):
                if asked:
                    self.episode_pub.publish(String(data=event))
            if not self.buttons_only:  # every tick, zeros included: if this node dies the car's watchdog brakes
                self.action_pub.publish(Float64MultiArray(data=[float(v) for v in car_input.action]))

    return CarTeleopNode


def make_teleop_node(device, **kwargs):
    return _node_class()(device, **kwargs)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.drivers.rc_car.teleop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("gamepad",), default="gamepad")
    parser.add_argument("--rate", type=float, default=20.0, help="control rate in Hz (the car's: 20)")
    parser.add_argument("--max-throttle", type=float, default=0.5, help="full trigger as a fraction of 3 m/s")
    parser.add_argument("--buttons-only", action="store_true", help="publish episode events only, no motion")
    parser.add_argument("--takeover", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="teleop")
    args, _ros_args = parser.parse_known_args(argv)
    if not args.rate > 0:
        parser.error(f"--rate: expected a positive rate in Hz, found {args.rate}")
    if args.takeover:
        parser.error("--takeover: the car's teleop does not take over from a policy yet; use --buttons-only to "
                     "label a policy's episodes")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    from robot_rl.drivers.network import apply_dds_environment
    apply_dds_environment()
    import rclpy

    from robot_rl.drivers.spinning import spin_until
    from robot_rl.drivers.teleop import TeleopDeviceError

    rclpy.init()
    device, node = CarGamepad(max_throttle=args.max_throttle), None
    try:
        device.connect()
        node = make_teleop_node(device, rate_hz=args.rate, buttons_only=args.buttons_only, node_name=args.name)
        spin_until([node])
    except (ImportError, TeleopDeviceError, ValueError) as err:
        raise SystemExit(f"rc_car teleop: {err}") from None
    finally:
        if node is not None:
            node.destroy_node()
        device.disconnect()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
