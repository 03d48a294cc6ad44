"""Polling with a deadline, for tests that wait on messages from other threads."""
from __future__ import annotations

import time


def wait_for(predicate, timeout: float, what: str):
    """The first truthy ``predicate()`` within ``timeout`` seconds, else an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
