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

``ScriptedTakeover`` is the operator of the tests and of benchmarks/hil_bench.py: on the twin it takes over
when the policy strays (the task's dense reward has not improved for ``patience`` ticks) and hands back
when the expert has put it on track (``hold`` ticks of the expert and a new best reward).
"""
from __future__ import annotations

import contextlib
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
    """A twin operator for takeover: the task's scripted expert, held while the policy strays.

    Each tick (``read``): the task's dense reward of the present state (the twin's true state, under
    ``lock``) is compared with its best this episode. Not holding: after ``patience`` ticks without a new
    best it takes over. Holding: it sends the expert's action and hands back after at least ``hold`` ticks
    once the reward has a new best. ``episode`` returns a number that changes when the twin's task is
    reset (TwinTaskNode.resets): the expert's plan and the best reward then start over. ``takeovers`` and
    ``human_ticks`` count what it did; ``max_human_ticks`` caps the ticks it may hold over its life (the
    human budget of a benchmark).
    """

    def __init__(self, env, *, lock=None, episode: Callable[[], int] = lambda: 0, patience: int = 5,
                 hold: int = 5, seed: int = 0, max_human_ticks: int | None = None, min_gain: float = 1e-3):
        from robot_rl.sim import make_expert

        if patience < 1 or hold < 1:
            raise ValueError(f"patience, hold: expected ticks >= 1, found {patience}, {hold}")
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.expert = make_expert(self.env, seed=seed)
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.episode, self.patience, self.hold = episode, int(patience), int(hold)
        self.max_human_ticks, self.min_gain = max_human_ticks, float(min_gain)
        self.takeovers = self.human_ticks = 0
        self._seen_episode, self._best, self._stalled, self._held_for = None, -np.inf, 0, 0
        self.holding = False

    @classmethod
    def for_twin_backend(cls, backend, episode: Callable[[], int] = lambda: 0, **kwargs) -> ScriptedTakeover:
        return cls(backend.env, lock=getattr(backend, "lock", None), episode=episode, **kwargs)

    def connect(self) -> None:
        """Nothing to open: the twin is the driver backend's."""

    def disconnect(self) -> None:
        """Nothing to close."""

    def read(self):
        from robot_rl.drivers.teleop import EE_DELTA_DIM, TeleopInput

        with self.lock:
            self._new_episode_check()
            reward = float(self.env._evaluate(sparse=False).reward)
            improved = reward > self._best + self.min_gain
            self._best = max(self._best, reward)
            self._stalled = 0 if improved else self._stalled + 1
            budget_left = self.max_human_ticks is None or self.human_ticks < self.max_human_ticks
            if not self.holding and self._stalled >= self.patience and budget_left:
                self.holding, self._held_for = True, 0
                self.takeovers += 1
            elif self.holding and ((self._held_for >= self.hold and improved) or not budget_left):
                self.holding = False
                self._stalled = 0
            action = self.expert(None)  # planned every tick: the expert's phases follow the scene
        if not self.holding:
            return TeleopInput()
        self._held_for += 1
        self.human_ticks += 1
        return TeleopInput(np.asarray(action[:EE_DELTA_DIM], dtype=float), held=True,
                           gripper_open=bool(action[-1] >= 0))

    def _new_episode_check(self) -> None:
        episode = self.episode()
        if episode != self._seen_episode:
            self._seen_episode, self._best, self._stalled, self.holding = episode, -np.inf, 0, False
            self.expert.reset()
