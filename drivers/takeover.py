"""Motion takeover during fine-tuning: while the operator holds a teleop device, its commands replace the
policy's; the recorder marks those steps.

The choice: an arbitration at the command stream, by the policy yielding. Both sources publish on the one
``ee_delta_command`` the driver subscribes, so every command, human or policy, goes through the same
safety filter, IK and ``ee_command_applied`` (nothing new in the driver, on any robot):

- The teleop node in takeover mode (``python -m robot_rl.drivers.teleop --takeover``) publishes
  ``intervention`` (std_msgs/Bool: "the operator holds") on every control tick, and ``ee_delta_command``
  only on the ticks it holds. What "holding" is, per device: the SpaceMouse deflected beyond the deadband
  (HIL-SERL's rule: touching it takes over) and for ``hold_s`` after it comes back to rest; the gamepad's
  takeover button held (Y by default); the keyboard's Tab toggles it (a terminal sends no key-up event,
  so a held key cannot be told from repeated presses).
- The policy node (robot_rl.drivers.policy_node) subscribes ``intervention`` and publishes nothing while
  the newest message says True (``PolicyYield``). When the operator lets go it resumes with a fresh query
  (an open-loop action chunk planned before the takeover is dropped). If the teleop node dies while held
  the policy stays silent and the driver's watchdog holds the arm: a lost operator never hands the arm
  back by itself.
- The recorder (``--interventions``) stores per step ``intervention`` = the newest ``intervention`` state
  stamped (by the publisher's source timestamp) at or before the command's applied stamp, and per
  episode ``interventions`` (takeovers) and ``human_steps``.

No jump at either handover: the commands are deltas of the end-effector target, and the driver's
controller keeps streaming from its commanded pose across the change of source (it restarts from the
measured joints only after a gap longer than its watchdog); the safety filter limits each step as for any
command. The gripper is absolute: at the start of a takeover the teleop's latched gripper is set to the
gripper the driver last applied (``ee_command_applied``), so taking over never opens or closes it; at the
hand-back the policy commands the gripper it wants from the observation, as on any tick.

Known edge: a policy command published in the same instant as the operator's first ``intervention`` may
still reach the driver (the policy has not yet received it): that one command is applied and, stamped
after the takeover began, recorded as the operator's. One control period at most, once per takeover.

``ScriptedTakeover`` is the twin's operator in the ROS graph (tests/test_hil_graph.py): the learner's
ScriptedOperator, which takes over when the policy strays (the task's dense reward has not improved for
``patience`` ticks) and hands back when the expert has put it on track (``hold`` ticks and a new best).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class PolicyYield:
    """The policy node's side: yields while the operator holds; ``resumed`` is True once per hand-back."""

    def __init__(self):
        self.held = False
        self.resumed = False
        self.takeovers = 0

    def update(self, held: bool) -> None:
        held = bool(held)
        if held and not self.held:
            self.takeovers += 1
        if self.held and not held:
            self.resumed = True
        self.held = held

    def take_resumed(self) -> bool:
        resumed, self.resumed = self.resumed, False
        return resumed


class HoldOver:
    """Deflection -> held, kept for ``hold_s`` after the device comes back to rest (a SpaceMouse passes
    through rest between moves: a short pause does not hand the arm back)."""

    def __init__(self, hold_s: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self.hold_s, self.clock = float(hold_s), clock
        self._last_active = -np.inf

    def update(self, active: bool) -> bool:
        now = self.clock()
        if active:
            self._last_active = now
        return now - self._last_active <= self.hold_s


class ScriptedTakeover:
    """The twin's scripted operator (robot_rl.learner.scripted_operator.ScriptedOperator) as a teleop device
    in takeover mode: held while the operator holds, the expert's action and gripper as the command."""

    def __init__(self, env, **kwargs):
        from robot_rl.learner.scripted_operator import ScriptedOperator

        self.operator = ScriptedOperator(env, **kwargs)

    @classmethod
    def for_twin_backend(cls, backend, episode: Callable[[], int] = lambda: 0, **kwargs) -> ScriptedTakeover:
        return cls(backend.env, lock=getattr(backend, "lock", None), episode=episode, **kwargs)

    def connect(self) -> None:
        """Nothing to open: the twin is the driver backend's."""

    def disconnect(self) -> None:
        """Nothing to close."""

    def read(self):
        from robot_rl.drivers.teleop import EE_DELTA_DIM, TeleopInput

        action = self.operator.act()
        if action is None:
            return TeleopInput()
        return TeleopInput(np.asarray(action[:EE_DELTA_DIM], dtype=float), held=True,
                           gripper_open=bool(action[-1] >= 0))
