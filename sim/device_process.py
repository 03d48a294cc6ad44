"""A protocol twin in a process of its own, as real hardware answers from its own microcontroller.

    class EmulatedThingProcess(DeviceProcess):
        DEVICE, PORT_NAME, LABEL = "robot_rl.sim.thing:EmulatedThing", "ttyTHING", "the emulated thing"

    with EmulatedThingProcess(seed=0) as thing:   # keywords go to EmulatedThing(link_path=..., **keywords)
        serial.Serial(thing.port)                 # the pty, behind a symlink in a temporary folder
        thing.call("unplug")                      # the emulator's own methods, run in the child

In the driver's process the emulator's threads share the GIL with the driver (whose SDK may busy-poll the
port) and with the test's threads, so under load its answers arrive in switch-interval (5 ms) steps. A
child process answers on its own CPU time, at a raised priority (``priority``, a nice increment; kept at
the default without the right to raise it), and hands the GIL between its own threads within 0.5 ms
rather than CPython's 5, as a device answers in microseconds.

Children fork from a forkserver that has already imported MuJoCo and the emulator, so one starts in a
fraction of a second. Calls go over a pipe between this process and its own child, never a network, and
only the emulator's methods named in ``CALLS`` are run.
"""
from __future__ import annotations

import importlib
import multiprocessing
import os
import shutil
import sys
import tempfile
from typing import ClassVar

SWITCH_INTERVAL_S = 0.0005
_CONTEXT = multiprocessing.get_context("forkserver")


def _serve(device: str, calls: tuple[str, ...], link_path: str, keywords: dict, connection, priority: int) -> None:
    module, name = device.split(":")
    try:  # the device is hardware of its own: on a loaded host it answers ahead of other work
        os.nice(priority)
    except PermissionError:  # raising priority needs root (CAP_SYS_NICE): run at the default
        pass
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    with getattr(importlib.import_module(module), name)(link_path=link_path, **keywords) as emulator:
        connection.send(("ok", None))
        while (request := connection.recv()) is not None:
            call, args = request
            try:
                if call not in calls:
                    raise AttributeError(f"{name} has no call {call!r}: expected one of {', '.join(calls)}")
                connection.send(("ok", getattr(emulator, call)(*args)))
            except Exception as error:  # noqa: BLE001 - handed back to the caller, raised there
                connection.send(("error", f"{type(error).__name__}: {error}"))


class DeviceProcess:
    DEVICE: ClassVar[str]              # "module:Class" of the emulator, a context manager serving a pty
    PORT_NAME: ClassVar[str]           # the symlink's name, e.g. ttyDXL
    LABEL: ClassVar[str]               # for errors: "the emulated WidowX"
    CALLS: ClassVar[tuple[str, ...]]   # the emulator's methods the parent may run

    def __init__(self, *, start_timeout_s: float = 60.0, priority: int = -10, **keywords):
        self.folder = tempfile.mkdtemp(prefix=f"{self.PORT_NAME.lower()}_")
        self.port = os.path.join(self.folder, self.PORT_NAME)
        self.start_timeout_s = start_timeout_s
        self._connection, child_end = _CONTEXT.Pipe()
        _CONTEXT.set_forkserver_preload([self.DEVICE.split(":")[0]])  # read when the forkserver starts
        self.process = _CONTEXT.Process(target=_serve, name=self.LABEL.replace(" ", "-"), daemon=True,
                                        args=(self.DEVICE, self.CALLS, self.port, keywords, child_end, priority))

    def start(self):
        self.process.start()
        if not self._connection.poll(self.start_timeout_s):
            self.stop()
            raise RuntimeError(f"{self.LABEL} did not start within {self.start_timeout_s:g} s")
        try:
            self._connection.recv()
        except EOFError as error:
            self.stop()
            raise RuntimeError(f"{self.LABEL} exited while starting (exit code {self.process.exitcode})") from error
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def call(self, name: str, *args):
        """Run the emulator's method ``name`` in the child; its return value, or its error as a RuntimeError."""
        self._connection.send((name, args))
        status, value = self._connection.recv()
        if status == "error":
            raise RuntimeError(f"{self.LABEL} refused {name}{args}: {value}")
        return value
