"""The actor's heartbeat: a small JSON file in the run folder that the actor rewrites every
``HEARTBEAT_S``, so the learner can tell a live actor from a dead one without a socket (the two sides
may run on different machines that only share the run folder; their clocks should agree within a few
seconds, as NTP keeps them).

    run_dir/actor_heartbeat.json   {"pid", "host", "kind", "time" (wall clock), "note", "stopped"}

The fast twin actor (robot_rl.learner.actor) beats from its own loop. The ROS actor's graph gets one
more process, this module's watcher: the supervisor stops the whole graph when any of its processes
dies, and every graph process dies with the supervisor, so the watcher beats exactly while the graph
runs. With ``--exit-when-finished`` (``role=actor``) the watcher also ends the graph once the learner's
newest checkpoint says training is finished, whatever the order the two sides were started in:

    python -m robot_rl.learner.heartbeat --run-dir runs/finetune/<run> [--exit-when-finished]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_FILE = "actor_heartbeat.json"
HEARTBEAT_S = 2.0
STALE_S = 15.0  # several missed beats: a loaded machine or a shared file system's cache stays "alive"


def heartbeat_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / HEARTBEAT_FILE


def restart_actor_command(run_dir: str | os.PathLike) -> str:
    return f"robot-rl finetune role=actor run_dir={run_dir}"


class Heartbeat:
    """Rewrites the heartbeat file (atomically: write, then rename) at most every ``every_s``."""

    def __init__(self, run_dir: str | os.PathLike, kind: str, every_s: float = HEARTBEAT_S):
        self.path, self.kind, self.every_s = heartbeat_path(run_dir), kind, every_s
        self._last = -float("inf")

    def beat(self, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            self._write(note, stopped=False)

    def stop(self, note: str) -> None:
        """A clean exit: the learner knows at once that no actor is left."""
        self._write(note, stopped=True)

    def _write(self, note: str, stopped: bool) -> None:
        doc = {"pid": os.getpid(), "host": socket.gethostname(), "kind": self.kind, "time": time.time(),
               "note": note, "stopped": stopped}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class ActorStatus:
    alive: bool
    description: str


def actor_status(run_dir: str | os.PathLike, stale_s: float = STALE_S) -> ActorStatus:
    """Whether an actor is alive in ``run_dir``, by its heartbeat, and in words."""
    try:
        doc = json.loads(heartbeat_path(run_dir).read_text())
    except FileNotFoundError:
        return ActorStatus(False, "no actor has started in this run folder")
    except (OSError, ValueError):  # being replaced right now: an actor is writing it
        return ActorStatus(True, "an actor is writing its heartbeat")
    who = f"the {doc.get('kind', '?')} actor (pid {doc.get('pid')} on {doc.get('host')})"
    age = time.time() - float(doc.get("time", 0))
    note = f": {doc['note']}" if doc.get("note") else ""
    if doc.get("stopped"):
        return ActorStatus(False, f"{who} stopped {age:.0f} s ago{note}")
    if age > stale_s:
        return ActorStatus(False, f"{who} has not been heard from for {age:.0f} s (a heartbeat is due every "
                                  f"{HEARTBEAT_S:g} s): it died or hangs")
    return ActorStatus(True, f"{who} is alive{note}")


def learner_finished(run_dir: str | os.PathLike) -> bool:
    """Whether the learner's newest checkpoint says training is over (checkpoints/latest -> state.json)."""
    checkpoints = Path(run_dir) / "checkpoints"
    try:
        state = json.loads((checkpoints / (checkpoints / "latest").read_text().strip() / "state.json").read_text())
    except (OSError, ValueError):  # none yet, or pruned between the two reads
        return False
    return bool(state.get("actor", {}).get("finished", False))


def watch(run_dir: str | os.PathLike, exit_when_finished: bool, poll_s: float = 0.5, echo=print) -> int:
    heartbeat = Heartbeat(run_dir, "ros")
    echo(f"heartbeat: beating in {heartbeat.path} every {HEARTBEAT_S:g} s while the actor graph runs")
    try:
        while not (exit_when_finished and learner_finished(run_dir)):
            heartbeat.beat("the ROS actor graph is running")
            time.sleep(poll_s)
    except KeyboardInterrupt:
        heartbeat.stop("the ROS actor graph was stopped")
        return 130
    heartbeat.stop("the learner finished")
    echo("heartbeat: the learner finished; ending the actor graph")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.learner.heartbeat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="the finetune run folder")
    parser.add_argument("--exit-when-finished", action="store_true",
                        help="exit (status 0) once the learner's newest checkpoint says finished")
    args = parser.parse_args(argv)
    return watch(args.run_dir, args.exit_when_finished)


if __name__ == "__main__":
    raise SystemExit(main())
