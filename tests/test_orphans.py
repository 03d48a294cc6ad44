"""No process of a graph outlives its supervisor, whatever killed it (robot_rl.launch.with_parent).

The supervisor is SIGKILLed (it gets no chance to stop anyone); every process it started must still stop."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from ros_helpers import wait_for

REPO = Path(__file__).resolve().parents[1]
SLEEPER = "import sys, time; print(sys.argv[1], 'up', flush=True); time.sleep(300)"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie has stopped; only its parent's reaping is left


class Output:
    """Lines of a process's stdout, read in a thread, with the pids of the processes it started."""

    def __init__(self, popen: subprocess.Popen):
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(popen.stdout), daemon=True).start()

    def started(self) -> dict[str, int]:
        found = (re.search(r"\[bringup\] started (\S+) \(pid (\d+)\)", line) for line in list(self.lines))
        return {m[1]: int(m[2]) for m in found if m}

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


def kill_and_expect_children_gone(supervisor: subprocess.Popen, children: dict[str, int], within_s: float):
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait(timeout=10)
    wait_for(lambda: not any(alive(pid) for pid in children.values()), within_s,
             f"the graph's processes {children} to stop after their supervisor was killed")


def test_sigkill_of_the_supervisor_stops_every_process_it_started(tmp_path):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    script = tmp_path / "graph.py"
    script.write_text(textwrap.dedent(f"""
        from robot_rl.launch.graphs import Process
        from robot_rl.launch.supervisor import run_graph
        run_graph([Process("a", "sleeper", ("a",)), Process("b", "sleeper", ("b",))], {str(tmp_path / 'logs')!r},
                  env={{"PYTHONPATH": {str(tmp_path)!r}}})
    """))
    supervisor = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    out = Output(supervisor)
    wait_for(lambda: out.has("[a] a up") and out.has("[b] b up"), 30, "both processes up")
    children = out.started()
    assert set(children) == {"a", "b"} and all(alive(pid) for pid in children.values())
    kill_and_expect_children_gone(supervisor, children, within_s=10)


def test_a_process_whose_parent_is_already_gone_does_not_start(tmp_path):
    done = subprocess.run([sys.executable, "-m", "robot_rl.launch.with_parent", "1", "sleeper", "x"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode != 0 and "is gone: not starting" in done.stderr


def test_sigkill_of_bringup_stops_the_robot_and_the_recorder_and_keeps_committed_episodes(tmp_path):
    """The real teleop_collect graph on the twin: the driver (torque on), the scripted operator and the
    recorder stop with the supervisor; every episode committed before the kill stays valid."""
    from robot_rl.datasets import TrajectoryReader
    from robot_rl.datasets.repair import validate

    out = tmp_path / "wx.zarr"
    bringup = subprocess.Popen([str(REPO / ".venv" / "bin" / "robot-rl"), "bringup", "teleop_collect", "backend=twin",
                                "teleop=scripted", "task=reach", "episodes=50", f"out={out}",
                                f"run_dir={tmp_path / 'run'}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    output = Output(bringup)
    try:
        wait_for(lambda: out.exists() and _committed(out) >= 1, 180, "a first committed episode")
    finally:
        children = output.started()
        kill_and_expect_children_gone(bringup, children, within_s=20)
    assert set(children) == {"widowx", "recorder"}, children
    assert validate(out) == []
    assert TrajectoryReader(out).num_episodes >= 1


def _committed(store: Path) -> int:
    from robot_rl.datasets import TrajectoryReader

    try:
        return TrajectoryReader(store).num_episodes
    except Exception:  # the store is being created: not readable yet
        return 0
