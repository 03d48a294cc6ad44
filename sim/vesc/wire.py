"""`PtyWire`: one end of a serial cable on a pseudo-terminal, with a pulled cable and line noise on demand.

The device side owns the pty's master; a driver opens ``port`` (the slave, or ``link_path``, a stable
symlink to it) with pyserial exactly as it would open /dev/ttyACM0. ``serve(handler)`` runs a thread that
hands every byte string read from the driver to ``handler`` and writes back what it returns, paced at the
line's baud rate (10 bit times a byte: start, 8 data, stop), as a real UART delivers it.

``unplug()`` closes the master at once, as a pulled USB cable does: the driver's next read or write fails
(EIO), the symlink disappears. ``replug()`` opens a fresh pty behind the same symlink.
"""
from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Callable

POLL_S = 0.01


class PtyWire:
    def __init__(self, *, link_path: str | os.PathLike | None = None, baudrate: int | None = 115200):
        self.link_path = os.fspath(link_path) if link_path is not None else None
        self.baudrate = baudrate  # None: no pacing (bytes as fast as the pty takes them)
        self.port: str | None = None
        self._master = self._slave = -1
        self._handler: Callable[[bytes], bytes] | None = None
        self._wire = threading.Lock()  # the serving thread's use of the master side, against unplug()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def serve(self, handler: Callable[[bytes], bytes]) -> PtyWire:
        self._handler = handler
        if self._thread is not None:
            return self
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        if self.link_path:
            if os.path.lexists(self.link_path):
                os.unlink(self.link_path)
            os.symlink(self.port, self.link_path)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="pty-wire", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self.link_path and os.path.lexists(self.link_path):
            os.unlink(self.link_path)

    def unplug(self) -> float:
        """Hang up now; returns the hang-up's time.monotonic() (one clock for every process on the host),
        taken just before the close: a reader may see the hang-up before close returns, never before this."""
        with self._wire:
            self._stop.set()
            hung_up_at = time.monotonic()
            if self._master >= 0:
                os.close(self._master)
                self._master = -1
            if self.link_path and os.path.lexists(self.link_path):
                os.unlink(self.link_path)
        self.stop()
        return hung_up_at

    def replug(self) -> PtyWire:
        self.stop()
        return self.serve(self._handler)

    @property
    def plugged(self) -> bool:
        return self._thread is not None

    def byte_time(self, count: int) -> float:
        return 0.0 if not self.baudrate else count * 10.0 / self.baudrate

    def _serve(self) -> None:
        master = self._master
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], POLL_S)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            with self._wire:
                if self._stop.is_set():
                    return
                try:
                    reply = self._handler(os.read(master, 4096))
                    if reply:
                        time.sleep(self.byte_time(len(reply)))  # the UART is busy this long
                        os.write(master, reply)
                except OSError:
                    return
