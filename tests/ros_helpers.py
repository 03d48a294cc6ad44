"""Polling with a deadline, for tests that wait on messages from other threads."""
from __future__ import annotations

import threading
import time


def wait_for(predicate, timeout: float, what: str, period: float = 0.01):
    """The first truthy ``predicate()`` within ``timeout`` seconds (asked every ``period`` s), else an
    AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Spinner:
    """Nodes on one single-threaded executor in a background thread. ``stop()`` shuts the executor down,
    runs each node's ``close`` callable given to ``add`` (a recorder's store, a driver's torque-off), then
    destroys the nodes, and closes the ``backends`` the test registered."""

    def __init__(self, context):
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=context)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.nodes: list = []
        self.closers: list = []
        self.backends: list = []

    def add(self, node, close=None):
        self.nodes.append(node)
        if close is not None:
            self.closers.append(close)
        self.executor.add_node(node)
        return node

    def start(self):
        self.thread.start()

    def stop(self):
        self.executor.shutdown()
        if self.thread.is_alive():
            self.thread.join(timeout=5.0)
        for close in self.closers:
            close()
        for node in self.nodes:
            node.destroy_node()
        for backend in self.backends:
            backend.close()
        self.nodes, self.closers, self.backends = [], [], []


class Operator:
    """The operator of a hardware job, played by a test: the recorder's std_srvs/Trigger services
    (start_episode, stop_episode, success_episode, discard_episode) called on a node of the test's Spinner,
    the driver's applied commands on ``applied_topic`` counted, and ``drive`` as the operator's device
    (a constant ee_delta_command at a rate)."""

    SERVICES = ("start_episode", "stop_episode", "success_episode", "discard_episode")

    def __init__(self, spinner: Spinner, name: str, applied_topic: str = "command_applied"):
        from rclpy.node import Node
        from sensor_msgs.msg import JointState
        from std_srvs.srv import Trigger

        self.node = spinner.add(Node(name, context=spinner.executor.context))
        self.clients = {service: self.node.create_client(Trigger, service) for service in self.SERVICES}
        self.applied: list = []
        self.node.create_subscription(JointState, applied_topic, self.applied.append, 10)

    def call(self, service: str, timeout: float = 10.0):
        """The service's Trigger response (success, message)."""
        from std_srvs.srv import Trigger

        client = self.clients[service]
        assert client.wait_for_service(timeout_sec=timeout), f"{service} not available"
        future = client.call_async(Trigger.Request())
        wait_for(future.done, timeout, f"the {service} response")
        return future.result()

    def drive(self, action, rate_hz: float):
        """Publish ``action`` on ee_delta_command at ``rate_hz`` from now on (the device held still at it)."""
        from std_msgs.msg import Float64MultiArray

        from robot_rl.drivers.driver_node import COMMAND_QOS

        publisher = self.node.create_publisher(Float64MultiArray, "ee_delta_command", COMMAND_QOS)
        message = Float64MultiArray(data=[float(a) for a in action])
        return self.node.create_timer(1.0 / rate_hz, lambda: publisher.publish(message))
