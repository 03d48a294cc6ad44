"""Run a node graph as plain processes: what ``ros2 launch`` does, for machines with only the pip ROS 2
wheels.

- Every process starts in the given order with the caller's environment, DDS on loopback unless the
  caller opted into another network mode (robot_rl.drivers.network).
- Every process dies with the supervisor, however it died (robot_rl.launch.with_parent): none is left
  running under pid 1 with a robot attached.
- Each output line is printed as ``[name] line`` and kept in ``<log_dir>/<name>.log``.
- The graph ends when a ``completes_job`` process exits with status 0 (the job is done: status 0), when
  any process exits otherwise (status 1, naming it), or on Ctrl-C / SIGTERM (status 130). The others
  then get SIGINT, which every node handles as Ctrl-C (the driver turns the torque off, the recorder
  discards the episode in progress), SIGTERM after ``grace_s`` and SIGKILL after twice that.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from robot_rl.drivers.network import apply_dds_environment
from robot_rl.launch.graphs import Process

POLL_S = 0.1


class Supervisor:
    def __init__(self, processes: list[Process], log_dir: str | os.PathLike, *, grace_s: float = 10.0,
                 echo=print, env: dict[str, str] | None = None):
        self.processes, self.log_dir, self.grace_s, self.echo = processes, Path(log_dir), grace_s, echo
        self.env = apply_dds_environment({**os.environ, **(env or {})})
        self.env["PYTHONUNBUFFERED"] = "1"  # lines reach the log as they are written
        self.running: dict[str, subprocess.Popen] = {}
        self.exit_codes: dict[str, int] = {}
        self._pumps: list[threading.Thread] = []
        self._echo_lock = threading.Lock()

    def say(self, line: str) -> None:
        """One line of the graph's output; the pump threads take turns (print writes the text and its newline
        separately, so two nodes' lines stopping at once came out as one)."""
        with self._echo_lock:
            self.echo(line)

    def run(self) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        interrupted = False
        # SIGINT too, explicitly: started from a background job or nohup, a process inherits SIGINT ignored,
        # and a robot's graph must still stop when told to.
        previous = ({sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
                    if _main_thread() else {})
        try:
            for process in self.processes:
                self._start(process)
            return self._watch()
        except KeyboardInterrupt:
            interrupted = True
            return 130
        finally:
            self._stop_all(reason="Ctrl-C" if interrupted else None)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start(self, process: Process) -> None:
        # Own process groups: a terminal's Ctrl-C reaches only this supervisor, which then stops each
        # node once (a second SIGINT could cut a driver's torque-off short). A process that reads the
        # terminal stays in the foreground group: reading it from another group stops the process.
        command = [sys.executable, "-m", "robot_rl.launch.with_parent", str(os.getpid()), process.module,
                   *process.args]  # it stops if this supervisor dies, SIGKILL included
        popen = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=None if process.terminal else subprocess.DEVNULL, text=True, bufsize=1,
                                 process_group=None if process.terminal else 0)
        self.running[process.name] = popen
        pump = threading.Thread(target=self._pump, args=(process.name, popen), daemon=True)
        pump.start()
        self._pumps.append(pump)
        self.say(f"[bringup] started {process.name} (pid {popen.pid}): {' '.join(process.command()[1:])}")

    def _pump(self, name: str, popen: subprocess.Popen) -> None:
        with open(self.log_dir / f"{name}.log", "a") as log:
            for line in popen.stdout:
                log.write(line)
                log.flush()
                self.say(f"[{name}] {line.rstrip()}")

    def _watch(self) -> int:
        completing = {p.name for p in self.processes if p.completes_job}
        while True:
            for name, popen in list(self.running.items()):
                code = popen.poll()
                if code is None:
                    continue
                self._reap(name, code)
                if code == 0 and name in completing:
                    self.say(f"[bringup] {name} finished: stopping the graph")
                    return 0
                self.say(f"[bringup] {name} exited with status {code}: stopping the graph "
                          f"(its log: {self.log_dir / f'{name}.log'})")
                return 1
            time.sleep(POLL_S)

    def _reap(self, name: str, code: int) -> None:
        self.exit_codes[name] = code
        del self.running[name]

    def _stop_all(self, reason: str | None) -> None:
        if reason:
            self.say(f"[bringup] {reason}: stopping the graph")
        for sig, wait in ((signal.SIGINT, self.grace_s), (signal.SIGTERM, self.grace_s), (signal.SIGKILL, 5.0)):
            for popen in reversed(list(self.running.values())):  # the last started stops first
                if popen.poll() is None:
                    popen.send_signal(sig)
            deadline = time.monotonic() + wait
            while any(p.poll() is None for p in self.running.values()) and time.monotonic() < deadline:
                time.sleep(POLL_S)
            for name, popen in list(self.running.items()):
                if popen.poll() is not None:
                    self._reap(name, popen.returncode)
                    self.say(f"[bringup] {name} stopped (status {popen.returncode})")
            if not self.running:
                break
        for pump in self._pumps:
            pump.join(timeout=2.0)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_graph(processes: list[Process], log_dir, **kwargs) -> int:
    """Run the graph to its end (see the module docstring); returns the exit status for the shell."""
    try:
        return Supervisor(processes, log_dir, **kwargs).run()
    finally:
        sys.stdout.flush()
