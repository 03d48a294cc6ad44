"""Run ``python -m <module> <args>`` so that it stops when the process that started it dies.

    python -m robot_rl.launch.with_parent <parent pid> <module> [args ...]

Linux's PR_SET_PDEATHSIG delivers SIGTERM to this process the moment its parent dies, however the parent
died (SIGKILL included); every node handles SIGTERM as Ctrl-C (torque off, the open episode discarded).
A parent that died before the signal was armed is caught by comparing ``getppid()`` with the pid it
passed. The supervisor starts every graph process through this module, so no driver, policy node,
recorder or learner outlives ``robot-rl bringup`` or ``robot-rl finetune``: a robot is never commanded
by an orphan.

Set in the child rather than by ``preexec_fn`` in the parent: the supervisor has threads (its output
pumps), and running Python code between fork and exec in a threaded process can deadlock.
"""
from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Arm SIGTERM on the parent's death; exit at once if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        sys.exit(f"the process that started this one (pid {parent_pid}) is gone: not starting")


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: python -m robot_rl.launch.with_parent <parent pid> <module> [args ...]")
    parent_pid, module, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    die_with_parent(parent_pid)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
