"""The emulated VESC in a process of its own, as the real one answers from its own microcontroller.

    with EmulatedVescProcess() as vesc:
        serial.Serial(vesc.port, 115200)   # the pty, behind a symlink in a temporary folder
        vesc.set_fault(5)                  # faults and peeks: the same calls as on EmulatedVesc

In the driver's process the emulator's threads would share the GIL with the driver and the test; a child
process answers on its own CPU time (see robot_rl.sim.dynamixel.process, which this follows). Children fork
from a forkserver that has already imported MuJoCo and the car. Calls go over a pipe, never a network.
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
_CONTEXT.set_forkserver_preload(["robot_rl.sim.vesc.car"])
CALLS = ("unplug", "replug", "set_fault", "clear_fault", "set_battery", "set_temperatures", "corrupt_replies",
         "corrupt_commands", "stats", "commands", "ground_truth", "wheel_speed", "steering", "rpm_log", "place")


def _serve(link_path: str, seed: int, baudrate: int | None, timeout_s: float, connection, priority: int) -> None:
    from robot_rl.sim.vesc.car import EmulatedVesc

    try:  # the VESC is hardware of its own: on a loaded host it answers ahead of other work
        os.nice(priority)
    except PermissionError:
        pass
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    with EmulatedVesc(link_path=link_path, seed=seed, baudrate=baudrate, timeout_s=timeout_s) as vesc:
        connection.send(("ok", None))
        while (request := connection.recv()) is not None:
            name, args = request
            try:
                if name not in CALLS:
                    raise AttributeError(f"EmulatedVesc has no call {name!r}: expected one of {', '.join(CALLS)}")
                connection.send(("ok", getattr(vesc, name)(*args)))
            except Exception as error:  # noqa: BLE001 - handed back to the caller, raised there
                connection.send(("error", f"{type(error).__name__}: {error}"))


class EmulatedVescProcess:
    def __init__(self, *, seed: int = 0, baudrate: int | None = 115200, timeout_s: float = 1.0,
                 start_timeout_s: float = 60.0, priority: int = -10):
        self.folder = tempfile.mkdtemp(prefix="emulated_vesc_")
        self.port = os.path.join(self.folder, "ttyVESC")
        self.start_timeout_s = start_timeout_s
        self._connection, child_end = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_serve, args=(self.port, seed, baudrate, timeout_s, child_end, priority),
                                        name="emulated-vesc", daemon=True)

    def start(self) -> EmulatedVescProcess:
        self.process.start()
        if not self._connection.poll(self.start_timeout_s):
            self.stop()
            raise RuntimeError(f"the emulated VESC did not start within {self.start_timeout_s:g} s")
        try:
            self._connection.recv()
        except EOFError as error:
            self.stop()
            raise RuntimeError(f"the emulated VESC exited while starting (exit code {self.process.exitcode})") from error
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

    def __enter__(self) -> EmulatedVescProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _call(self, name: str, *args):
        self._connection.send((name, args))
        status, value = self._connection.recv()
        if status == "error":
            raise RuntimeError(f"the emulated VESC refused {name}{args}: {value}")
        return value

    def unplug(self) -> float:
        return self._call("unplug")

    def replug(self) -> None:
        self._call("replug")

    def set_fault(self, code: int) -> None:
        self._call("set_fault", code)

    def clear_fault(self) -> None:
        self._call("clear_fault")

    def set_battery(self, volts: float) -> None:
        self._call("set_battery", volts)

    def set_temperatures(self, fet: float, motor: float) -> None:
        self._call("set_temperatures", fet, motor)

    def corrupt_replies(self, count: int) -> None:
        self._call("corrupt_replies", count)

    def corrupt_commands(self, count: int) -> None:
        self._call("corrupt_commands", count)

    def stats(self) -> dict:
        return self._call("stats")

    def commands(self) -> dict:
        return self._call("commands")

    def rpm_log(self) -> list[tuple[float, float]]:
        return self._call("rpm_log")

    def place(self, x: float, y: float, yaw: float) -> None:
        self._call("place", x, y, yaw)

    def ground_truth(self) -> np.ndarray:
        return self._call("ground_truth")

    def wheel_speed(self) -> float:
        return self._call("wheel_speed")

    def steering(self) -> float:
        return self._call("steering")
