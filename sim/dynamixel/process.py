"""The emulated WidowX chain in a process of its own, as a real servo chain answers from outside the driver.

    with EmulatedWidowXProcess() as arm:
        ...  # arm.port: the pty (behind a symlink in a temporary folder)

In the driver's process the emulator's bus and physics threads share the GIL with the driver, whose SDK
busy-polls the port, so under load a sync read's answers arrive in switch-interval (5 ms) steps and miss
dynamixel-sdk's ~36 ms timeout; in the test process they share it with the test's own threads. A child
process (spawned) answers on its own CPU time, at a raised priority (``priority``, a nice increment; kept
at the default without the right to raise it), as servos do not share a CPU with the host's other work.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile


def _serve(link_path: str, ready, stop, priority: int) -> None:
    from robot_rl.sim.dynamixel.widowx_chain import EmulatedWidowX

    try:  # servos are hardware of their own: on a loaded host the emulator answers ahead of other work
        os.nice(priority)
    except PermissionError:  # raising priority needs root (CAP_SYS_NICE): run at the default
        pass
    with EmulatedWidowX(link_path=link_path):
        ready.set()
        stop.wait()


class EmulatedWidowXProcess:
    def __init__(self, start_timeout_s: float = 60.0, priority: int = -10):
        self.folder = tempfile.mkdtemp(prefix="emulated_widowx_")
        self.port = os.path.join(self.folder, "ttyDXL")
        self.start_timeout_s = start_timeout_s
        ctx = multiprocessing.get_context("spawn")
        self.ready, self.stop_event = ctx.Event(), ctx.Event()
        self.process = ctx.Process(target=_serve, args=(self.port, self.ready, self.stop_event, priority),
                                   name="emulated-widowx", daemon=True)

    def start(self) -> EmulatedWidowXProcess:
        self.process.start()
        if not self.ready.wait(self.start_timeout_s):
            self.stop()
            raise RuntimeError(f"the emulated WidowX did not start within {self.start_timeout_s:g} s")
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.process.pid is not None:
            self.process.join(timeout=10.0)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(timeout=5.0)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> EmulatedWidowXProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
