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
