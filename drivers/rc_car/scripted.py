"""The car twin's scripted planner as an operator: episode events and normalized (steering, throttle) actions
on the topics a teleop device uses, so the recorder records it like a person driving.

    node = ScriptedCarOperator(backend, episodes=3, seed=0, rate_hz=20.0)   # beside the car's driver node

Each tick (the control rate) it publishes one action on `ee_delta_command` (zeros between episodes: the
command stream never pauses, as a teleop device's does not), and `episode_control` "start" / "stop" around
each episode: it draws the next task (robot_rl.drivers.twin_reset), plays the task's scripted expert
(robot_rl.sim.rc_car.expert: a planned path, pure pursuit) until the goal is reached or the task's step
limit, then stops. With ``wait_for_recorder`` the first start waits until someone listens to
`episode_control` and ``settle_s`` more (the recorder's other streams fill meanwhile). It reads the twin
under the backend's physics lock, so it runs in the twin's process.
"""
from __future__ import annotations

import time

from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, String

from robot_rl.drivers.teleop import EPISODE_START, EPISODE_STOP, TELEOP_QOS
from robot_rl.drivers.twin_reset import reset_task_keeping_robot


class ScriptedCarOperator(Node):
    def __init__(self, backend, *, episodes: int, seed: int = 0, rate_hz: float = 20.0,
                 wait_for_recorder: bool = False, settle_s: float = 2.0, node_name: str = "teleop"):
        from robot_rl.sim import make_expert

        if episodes < 1:
            raise ValueError(f"episodes: expected at least 1, found {episodes}")
        super().__init__(node_name)
        self.backend, self.env = backend, backend.env
        self.expert = make_expert(self.env, seed=seed)
        self.episodes, self.seed = int(episodes), int(seed)
        self.wait_for_recorder, self.settle_s = wait_for_recorder, float(settle_s)
        self.outcomes: list[tuple[str, int]] = []
        self.steps, self.in_episode = 0, False
        self._heard_since: float | None = None
        self.action_pub = self.create_publisher(Float64MultiArray, "ee_delta_command", TELEOP_QOS)
        self.episode_pub = self.create_publisher(String, "episode_control", TELEOP_QOS)
        self.timer = self.create_timer(1.0 / rate_hz, self.tick)

    @property
    def finished(self) -> bool:
        return len(self.outcomes) >= self.episodes

    def _ready(self) -> bool:
        if not self.wait_for_recorder:
            return True
        if self._heard_since is None and self.episode_pub.get_subscription_count() > 0:
            self._heard_since = time.monotonic()
        return self._heard_since is not None and time.monotonic() - self._heard_since >= self.settle_s

    def tick(self) -> None:
        if self.finished or (not self.in_episode and not self._ready()):
            self._publish_action((0.0, 0.0))
            return
        with self.backend.lock:
            if not self.in_episode:
                reset_task_keeping_robot(self.env, self.seed + len(self.outcomes))
                self.expert.reset()
                self.steps, self.in_episode = 0, True
                start = True
            else:
                start = False
            success = self.env.evaluate().success
            action = None if success or self.steps >= self.env.max_steps else self.expert(self.env.observe(cameras=()))
        if start:
            self.episode_pub.publish(String(data=EPISODE_START))
        if action is None:
            self.outcomes.append(("success" if success else "step_limit", self.steps))
            self.in_episode = False
            self.episode_pub.publish(String(data=EPISODE_STOP))
            self._publish_action((0.0, 0.0))
            return
        self.steps += 1
        self._publish_action(action)

    def _publish_action(self, action) -> None:
        self.action_pub.publish(Float64MultiArray(data=[float(a) for a in action]))
