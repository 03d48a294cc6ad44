"""Run a process's nodes: one single-threaded executor (robot_rl.drivers.driver_node says why not a
multi-threaded one) until a condition, Ctrl-C, SIGTERM or an rclpy shutdown.

Ctrl-C and SIGTERM only request a stop: the spin loop sees it between callbacks. rclpy's own handlers
shut the context down from another thread the moment a signal arrives, so a callback running then (a
timer publishing diagnostics) fails with "publisher's context is invalid", and Python's KeyboardInterrupt
lands at whatever line runs. Here the caller's clean-up (timers cancelled, the driver's torque off, nodes
destroyed) runs while the context is still up, and the process shuts rclpy down last. A process asked to
stop stays asked: a second signal does not cut its clean-up short (a supervisor's SIGKILL still does).

The loop reads the signal wakeup fd as well as the flag the Python handler sets: CPython 3.11 can leave a
signal's Python handler unrun while other threads take the GIL (measured here: 3 of 10 Ctrl-Cs never
reached the handler of a driver with a 1000 Hz bus and the twin's physics thread), while the byte its C
handler writes to the wakeup fd is always there.
"""
from __future__ import annotations

import os
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stop = threading.Event()
_wakeup: int | None = None  # the read end of the signal wakeup pipe, once installed


def stop_on_signals() -> dict:
    """From now on SIGINT and SIGTERM request a stop (stop_requested()) instead of raising; returns what
    they replace ("wakeup_fd": the previous wakeup fd). Only the main thread can install signal handlers:
    elsewhere this does nothing."""
    global _wakeup
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {sig: signal.signal(sig, _request_stop) for sig in STOP_SIGNALS}
    if _wakeup is None:
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        previous["wakeup_fd"] = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        _wakeup = read
    return previous


def stop_requested() -> bool:
    if not _stop.is_set() and _wakeup is not None:
        try:
            if set(os.read(_wakeup, 256)) & {int(sig) for sig in STOP_SIGNALS}:
                _stop.set()
        except BlockingIOError:  # nothing arrived
            pass
    return _stop.is_set()


def spin_until(nodes: list, until=lambda: False) -> None:
    """Spin ``nodes`` until ``until()`` is true, a stop is requested (Ctrl-C, SIGTERM) or rclpy shuts down.
    Ended by a signal, the stop handlers stay installed (the clean-up runs to its end); ended otherwise,
    the previous handlers come back."""
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    previous = stop_on_signals()
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        while not stop_requested() and not until():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        if not stop_requested():
            _restore(previous)


def _restore(previous: dict) -> None:
    global _wakeup
    for key, handler in previous.items():
        if key == "wakeup_fd":
            write = signal.set_wakeup_fd(handler)
            os.close(write)
            os.close(_wakeup)
            _wakeup = None
        elif handler is not None:  # None: not installed from Python, nothing to put back
            signal.signal(key, handler)


def _request_stop(signum, frame):
    _stop.set()
