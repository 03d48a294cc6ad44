"""The twin's task as ROS topics: privileged task state, reward and success, and a ``reset_task`` service.

    node = TwinTaskNode(backend, rate_hz=10.0)   # a twin backend in this process (WidowXTwinBackend)

Runs beside the driver node of a twin backend, in its process (it reads ``backend.env`` under the lock
``backend.lock`` its physics thread holds around each step, so it never sees a half-stepped state).
Hardware has no such node: the recorder then records without ``task_state`` and with reward 0.

| name          | kind    | type                                  | rate             | QoS                         |
|---------------|---------|---------------------------------------|------------------|-----------------------------|
| `task_state`  | publish | sensor_msgs/JointState (named vector) | `rate_hz`        | reliable, volatile, last 10 |
| `task_status` | publish | sensor_msgs/JointState (named vector) | `rate_hz`        | reliable, volatile, last 10 |
| `reset_task`  | service | std_srvs/Trigger                      | -                | services default            |

- Both topics carry a vector in ``position`` with a name per entry, stamped with the node clock when the
  twin was read (both messages of one reading share the stamp). ``task_state``: the task's privileged
  ``task_state`` observation (names ``task_state[i]``; its meaning is the spec's ``task_state``
  description). ``task_status``: names ``reward, success, failure, terminated``: the task's reward for the
  present state (its ``reward_type``), 1.0/0.0 flags, and ``terminated`` = failure, or success when
  ``terminate_on_success`` (default False: the twin jobs record fixed-horizon episodes, see
  robot_rl/configs/collect.yaml).
- ``reset_task``: draws the next task (new object and goal positions, env.reset with the next seed, or
  the env's own random stream without ``seed``) keeping the robot where it is
  (robot_rl.drivers.twin_reset), then publishes the new state at once. The recorder calls it after each
  episode, so twin episodes reset without an operator.
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from robot_rl.drivers.streams import TASK_QOS
from robot_rl.drivers.twin_reset import reset_task_keeping_robot

STATUS_NAMES = ("reward", "success", "failure", "terminated")


class TwinTaskNode(Node):
    def __init__(self, backend, *, rate_hz: float = 5.0, node_name: str = "twin_task",
                 terminate_on_success: bool = False, seed: int | None = None, **node_kwargs):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz: expected a positive rate in Hz, found {rate_hz}")
        super().__init__(node_name, **node_kwargs)
        self.backend = backend
        self.terminate_on_success = bool(terminate_on_success)
        self.seed = seed
        self.resets = 0
        self.state_pub = self.create_publisher(JointState, "task_state", TASK_QOS)
        self.status_pub = self.create_publisher(JointState, "task_status", TASK_QOS)
        self.create_service(Trigger, "reset_task", self._on_reset_task)
        self.timer = self.create_timer(1.0 / float(rate_hz), self.publish)

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(task_state, status vector reward/success/failure/terminated) of the twin now."""
        with self.backend.lock:  # one snapshot: the task state and its evaluation from the same physics step
            task_state = np.asarray(self.backend.env.task_state(), dtype=float)
            evaluation = self.backend.env.evaluate()
        terminated = evaluation.failure or (evaluation.success and self.terminate_on_success)
        status = np.array([evaluation.reward, evaluation.success, evaluation.failure, terminated], dtype=float)
        return task_state, status

    def publish(self) -> None:
        task_state, status = self.read()
        stamp = self.get_clock().now().to_msg()
        state_names = [f"task_state[{i}]" for i in range(len(task_state))]
        for publisher, names, values in ((self.state_pub, state_names, task_state),
                                         (self.status_pub, list(STATUS_NAMES), status)):
            msg = JointState(name=names, position=values.tolist())
            msg.header.stamp = stamp
            publisher.publish(msg)

    def _on_reset_task(self, request, response):
        seed = None if self.seed is None else self.seed + self.resets + 1
        with self.backend.lock:
            reset_task_keeping_robot(self.backend.env, seed)
        self.resets += 1
        self.publish()
        response.success = True
        response.message = f"task reset ({self.resets} so far){'' if seed is None else f' with seed {seed}'}"
        self.get_logger().info(response.message)
        return response
