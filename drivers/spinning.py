"""Run a process's nodes: one single-threaded executor (robot_rl.drivers.driver_node says why not a
multi-threaded one) until a condition, Ctrl-C, SIGTERM or an rclpy shutdown."""
from __future__ import annotations

import signal
import threading


def spin_until(nodes: list, until=lambda: False) -> None:
    """Spin ``nodes`` until ``until()`` is true. SIGTERM (a supervisor's second request to stop) is
    handled as Ctrl-C, so the caller's clean-up (the driver's torque off) runs either way."""
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        while not until():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()


def _interrupt(signum, frame):
    raise KeyboardInterrupt
