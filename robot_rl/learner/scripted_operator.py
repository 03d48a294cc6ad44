"""A scripted operator for human-in-the-loop runs on the twin: the task's expert, taking over when the
policy strays and handing back once it has put the task on track (the stand-in for HIL-SERL's human).

    operator = ScriptedOperator(env, patience=5, hold=5)
    action = operator.act()      # each tick, before the policy's action is applied: the expert's, or None

Each tick the task's dense reward of the present state (the twin's true state) is compared with its best
this episode. Not holding: after ``patience`` ticks without a new best (by more than ``min_gain``) it
takes over. Holding: it returns the expert's action and hands back after at least ``hold`` ticks once the
reward has a new best. ``new_episode()`` (or a change of the ``episode()`` number) starts over: the
expert's plan and the best reward. ``max_human_ticks`` caps the ticks it may hold over its life (the human
budget of a benchmark). ``takeovers`` and ``human_ticks`` count what it did.

Used by the learner's twin rollouts (``robot-rl train takeover=true``) and, through
robot_rl.drivers.takeover.ScriptedTakeover, as the takeover teleop of the ROS graph.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np


class ScriptedOperator:
    def __init__(self, env, *, lock=None, episode: Callable[[], int] | None = None, patience: int = 5,
                 hold: int = 5, seed: int = 0, max_human_ticks: int | None = None, min_gain: float = 1e-3):
        from robot_rl.sim import make_expert

        if patience < 1 or hold < 1:
            raise ValueError(f"patience, hold: expected ticks >= 1, found {patience}, {hold}")
        if max_human_ticks is not None and max_human_ticks < 0:
            raise ValueError(f"max_human_ticks: expected ticks >= 0 or None (no limit), found {max_human_ticks}")
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.expert = make_expert(self.env, seed=seed)
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.episode, self.patience, self.hold = episode, int(patience), int(hold)
        self.max_human_ticks, self.min_gain = max_human_ticks, float(min_gain)
        self.takeovers = self.human_ticks = 0
        self.holding = False
        self._seen_episode = None
        self.new_episode()

    def new_episode(self) -> None:
        self._best, self._stalled, self._held_for, self.holding = -np.inf, 0, 0, False
        self.expert.reset()

    def act(self) -> np.ndarray | None:
        """The expert's action while the operator holds, else None (the policy acts)."""
        with self.lock:
            if self.episode is not None and self.episode() != self._seen_episode:
                self._seen_episode = self.episode()
                self.new_episode()
            reward = float(self.env._evaluate(sparse=False).reward)
            improved = reward > self._best + self.min_gain
            self._best = max(self._best, reward)
            self._stalled = 0 if improved else self._stalled + 1
            budget_left = self.max_human_ticks is None or self.human_ticks < self.max_human_ticks
            if not self.holding and self._stalled >= self.patience and budget_left:
                self.holding, self._held_for = True, 0
                self.takeovers += 1
            elif self.holding and ((self._held_for >= self.hold and improved) or not budget_left):
                self.holding, self._stalled = False, 0
            action = self.expert(None)  # planned every tick: the expert's phases follow the scene
        if not self.holding:
            return None
        self._held_for += 1
        self.human_ticks += 1
        return action
