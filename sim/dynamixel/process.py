"""The emulated WidowX chain in a process of its own, as a real servo chain answers from outside the driver.

    with EmulatedWidowXProcess() as arm:
        port = PortHandler(arm.port)   # the pty, behind a symlink in a temporary folder
        arm.silence(5)                 # faults and register peeks: the same calls as on EmulatedWidowX

In the driver's process the emulator's bus and physics threads share the GIL with the driver, whose SDK
busy-polls the port, so under load a sync read's answers arrive in switch-interval (5 ms) steps and miss
dynamixel-sdk's ~36 ms timeout; in the test process they share it with the test's own threads. A child
process answers on its own CPU time, at a raised priority (``priority``, a nice increment; kept at the
default without the right to raise it), as servos do not share a CPU with the host's other work.

Children fork from a forkserver that has already imported MuJoCo and the emulator, so one starts in a
fraction of a second. Calls go over a pipe between this process and its own child, never a network.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile

import numpy as np

SWITCH_INTERVAL_S = 0.0005
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["robot_rl.sim.dynamixel.widowx_chain"])


def _serve(link_path: str, connection, priority: int) -> None:
    from robot_rl.sim.dynamixel.widowx_chain import EmulatedWidowX

    try:  # servos are hardware of their own: on a loaded host the emulator answers ahead of other work
        os.nice(priority)
    except PermissionError:  # raising priority needs root (CAP_SYS_NICE): run at the default
        pass
    # The bus thread waits on the pty and then needs the GIL, which the physics thread holds while it steps:
    # hand it over within 0.5 ms rather than CPython's 5, as a servo answers in microseconds.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    with EmulatedWidowX(link_path=link_path) as arm:
        connection.send(("ok", None))
        while (request := connection.recv()) is not None:
            name, args = request
            try:
                connection.send(("ok", getattr(arm, name)(*args)))
            except Exception as error:  # noqa: BLE001 - handed back to the caller, raised there
                connection.send(("error", f"{type(error).__name__}: {error}"))


class EmulatedWidowXProcess:
    def __init__(self, start_timeout_s: float = 60.0, priority: int = -10):
        self.folder = tempfile.mkdtemp(prefix="emulated_widowx_")
        self.port = os.path.join(self.folder, "ttyDXL")
        self.start_timeout_s = start_timeout_s
        self._connection, child_end = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_serve, args=(self.port, child_end, priority),
                                        name="emulated-widowx", daemon=True)

    def start(self) -> EmulatedWidowXProcess:
        self.process.start()
        if not self._connection.poll(self.start_timeout_s):
            self.stop()
            raise RuntimeError(f"the emulated WidowX did not start within {self.start_timeout_s:g} s")
        self._connection.recv()
        return self

    def stop(self) -> None:
        if self.process.pid is not None and self.process.is_alive():
            try:
                self._connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.process.join(timeout=10.0)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(timeout=5.0)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> EmulatedWidowXProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- EmulatedWidowX's test surface, run in the child ----------------------------------------
    def _call(self, name: str, *args):
        self._connection.send((name, args))
        status, value = self._connection.recv()
        if status == "error":
            raise RuntimeError(f"the emulated WidowX refused {name}{args}: {value}")
        return value

    def silence(self, servo_id: int) -> None:
        self._call("silence", servo_id)

    def unsilence(self, servo_id: int) -> None:
        self._call("unsilence", servo_id)

    def set_overload(self, servo_id: int) -> None:
        self._call("set_overload", servo_id)

    def unplug(self) -> float:
        return self._call("unplug")

    def replug(self) -> None:
        self._call("replug")

    def register(self, servo_id: int, name: str) -> int:
        return self._call("register", servo_id, name)

    def set_register(self, servo_id: int, name: str, value: int) -> None:
        self._call("set_register", servo_id, name, value)

    def torque_enabled(self, servo_id: int) -> bool:
        return self._call("torque_enabled", servo_id)

    def joint_positions(self) -> np.ndarray:
        return self._call("joint_positions")

    def device(self) -> str:
        return self._call("device")
