"""``robot-rl finetune realtime=false actors=N``: N fast twin actors (robot_rl.learner.actor) as Ray
actors, on a Ray instance this process starts (the default) or on an existing cluster (``ray_address``).

    python -m robot_rl.learner.ray_actors --run-dir runs/finetune/<run> --actors 4 [--ray-address HOST:PORT]

- Actor ``k`` appends whole episodes to its own store, ``run_dir/online/actor_<k>.zarr``, with
  ``actor_id`` k in each episode's info. A store has one writer (robot_rl.datasets.lock refuses a second),
  so the actors do not share one; the learner reads the run's stores as one source, in the order their
  episodes were committed (robot_rl.learner.replay.online_stores).
- Pacing as with one actor, over the run: the actors pause while the committed steps the newest
  checkpoint has not consumed reach ``max_lag`` per actor.
- A killed actor loses at most its episode in progress (never committed; the restarted actor drops the
  rows it left). Ray restarts it up to ``max_restarts`` times and runs its loop again.
- The Ray instance started here binds 127.0.0.1 only (Ray's node address is the loopback one), with no
  dashboard and no usage reporting. On a cluster the actors must reach the run's stores and checkpoints:
  ``object_store=s3://...`` (credentials from each node's environment), or a run folder every node mounts.
"""
from __future__ import annotations

import argparse
import os
import signal
import time

RAY_EXTRA = "pip install 'robot-rl[scale]'"


def import_ray(local: bool):
    """Ray, with its environment set first (Ray reads it at import): no usage reporting, and for a local
    instance the loopback address as the node's, so every Ray server binds 127.0.0.1."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # on Linux too: the node IP is then 127.0.0.1
    try:
        import ray
    except ImportError as e:
        raise SystemExit(f"actors=N runs the actors on Ray, which is not installed: {RAY_EXTRA}") from e
    return ray


class TwinActorWorker:
    """One fast twin actor in a Ray worker process (decorated with ``ray.remote`` in :func:`run_actors`)."""

    def __init__(self, run_dir: str, actor_id: int, max_lag: int, object_store: str | None = None):
        import torch

        torch.set_num_threads(1)  # one core per actor
        self.run_dir, self.actor_id, self.max_lag, self.object_store = run_dir, actor_id, max_lag, object_store
        os.makedirs(run_dir, exist_ok=True)  # its heartbeat, on a node that may not share the run folder

    def pid(self) -> int:
        return os.getpid()

    def run(self) -> int:
        """Act until the learner finishes; returns the episodes committed by this incarnation."""
        from robot_rl.learner.actor import TwinActor

        echo = lambda line: print(f"[actor {self.actor_id}] {line}", flush=True)  # noqa: E731
        actor = TwinActor(self.run_dir, max_lag=self.max_lag, actor_id=self.actor_id, echo=echo,
                          object_store=self.object_store)
        try:
            return actor.run()
        finally:
            actor.close()


def start_ray(ray, address: str | None, actors: int) -> None:
    if address:
        ray.init(address=address, log_to_driver=True, configure_logging=False)
    else:  # logical CPUs: every actor is placed even on a machine with fewer cores
        ray.init(include_dashboard=False, num_cpus=max(actors, os.cpu_count() or 1), log_to_driver=True,
                 configure_logging=False)


def start_actors(ray, run_dir: str, actors: int, max_lag: int, max_restarts: int, object_store: str | None) -> list:
    remote = ray.remote(num_cpus=1, max_restarts=max_restarts, max_task_retries=-1)(TwinActorWorker)
    return [remote.remote(os.path.abspath(run_dir), k, max_lag, object_store) for k in range(actors)]


def run_actors(run_dir: str, actors: int, *, max_lag: int = 50, address: str | None = None,
               max_restarts: int = 10, keep_running_when_finished: bool = False, object_store: str | None = None,
               echo=print) -> int:
    ray = import_ray(local=not address)
    start_ray(ray, address, actors)
    try:
        workers = start_actors(ray, run_dir, actors, max_lag, max_restarts, object_store)
        echo(f"ray actors: {actors} twin actors on {'the cluster at ' + address if address else 'a local Ray'} "
             f"(pids {ray.get([w.pid.remote() for w in workers])}), each restarted up to {max_restarts} times")
        episodes = ray.get([w.run.remote() for w in workers])
        echo(f"ray actors: the learner finished; episodes committed per actor (last incarnation): {episodes}")
        while keep_running_when_finished:  # role=all: the supervisor stops this once the learner has exited
            time.sleep(0.5)
        return 0
    finally:
        ray.shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.learner.ray_actors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="the finetune run folder (checkpoints/, online/)")
    parser.add_argument("--actors", type=int, required=True, help="how many twin actors")
    parser.add_argument("--max-lag", type=int, default=50, help="committed, unconsumed steps allowed per actor")
    parser.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start one here)")
    parser.add_argument("--max-restarts", type=int, default=10, help="restarts of each actor after its process dies")
    parser.add_argument("--keep-running-when-finished", action="store_true",
                        help="do not exit when the learner finishes; wait to be stopped (a graph the learner ends)")
    parser.add_argument("--object-store", default=None,
                        help="the run's object_store URL (stores and checkpoints there, not in the run folder)")
    args = parser.parse_args(argv)
    for name in ("actors", "max_lag"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive number, found {getattr(args, name)}")
    signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's stop: as Ctrl-C, and Ray shuts down
    try:
        return run_actors(args.run_dir, args.actors, max_lag=args.max_lag, address=args.ray_address,
                          max_restarts=args.max_restarts, keep_running_when_finished=args.keep_running_when_finished,
                          object_store=args.object_store)
    except KeyboardInterrupt:
        return 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
