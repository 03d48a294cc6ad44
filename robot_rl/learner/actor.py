"""The actor of ``robot-rl finetune`` on the twin without ROS: the run's twin stepped as fast as the CPU
allows, acting with the learner's newest checkpoint and appending each finished episode to the run's
online store. The ROS actor (driver, cameras, policy node, recorder) does the same at the robot's real
rate; this one is for demos and sweeps, where real time would take hours.

    python -m robot_rl.learner.actor --run-dir runs/finetune/<run> --max-lag 50

The checkpoints and the store are the only link to the learner, so the actor waits for the first
checkpoint whose ``actor.acting`` is set (an online phase has begun), reloads the weights whenever
``checkpoints/latest`` moves, and exits once a checkpoint says ``finished`` (at once if it already does).
It beats the run's heartbeat (robot_rl.learner.heartbeat) from its loop, waiting or acting, so the
learner can tell whether an actor is alive. A real robot is slower than
the learner; the twin is not, so the actor pauses when it has committed ``max_lag`` steps more than the
newest checkpoint has consumed: otherwise it would fill the store with the actions of a stale policy,
and UTD would lose its meaning. While the learner is down it therefore pauses too, and it picks up where
it was when the learner's next checkpoint arrives.
"""
from __future__ import annotations

import argparse
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from robot_rl.datasets import StoreError, StoreWriter
from robot_rl.datasets.layout import open_root
from robot_rl.learner.checkpoint import latest_checkpoint, load_weights
from robot_rl.learner.heartbeat import Heartbeat
from robot_rl.learner.replay import actor_store, actor_stores
from robot_rl.learner.rollout import Rollouts
from robot_rl.learner.run_storage import as_root, checkpoints_folder
from robot_rl.learner.trainer import online_store

ACTOR_SEED_OFFSET = 2_000_000  # the actor's episodes never reuse the seeds of demonstrations or evaluations
ACTOR_ID_SEEDS = 10_000_000    # several actors (ray_actors): actor k's episode seeds start k times this further
CHECK_EVERY = 10               # env steps between looks at checkpoints/latest (and the other actors' stores)


@dataclass(frozen=True)
class Published:
    """What the learner's newest checkpoint tells the actor."""
    folder: Path
    env_steps: int   # online steps the learner had consumed when it wrote the checkpoint
    acting: bool     # an online phase has begun: act with these weights
    finished: bool   # training is over: stop


def newest_published(root: str | Path) -> Published | None:
    """The newest complete checkpoint of a run (its folder, or its object_store URL: a local copy), or None
    (none yet, or pruned while being read)."""
    folder = latest_checkpoint(checkpoints_folder(as_root(root)))
    try:
        state = json.loads((folder / "state.json").read_text()) if folder else None
    except OSError:
        return None
    if state is None:
        return None
    actor = state.get("actor", {"acting": True, "finished": False})  # a run trained in one process
    return Published(folder, int(state["env_steps"]), bool(actor["acting"]), bool(actor["finished"]))


def wait_until_acting(root: str | Path, heartbeat: Heartbeat | None = None, poll_s: float = 0.5,
                      echo=print) -> Published:
    """Block until the learner publishes a checkpoint to act with (after offline pretraining)."""
    echo(f"actor: waiting for the learner's first online checkpoint in {checkpoints_folder(as_root(root))}")
    while True:
        published = newest_published(root)
        if published is not None and (published.acting or published.finished):
            return published
        if heartbeat is not None:  # the fast actor's; the ROS actor graph beats from its own process
            heartbeat.beat("waiting for the learner's first online checkpoint")
        time.sleep(poll_s)


class TwinActor:
    def __init__(self, run_dir: str | Path, *, max_lag: int = 50, poll_s: float = 0.05, echo=print,
                 exit_when_finished: bool = True, actor_id: int | None = None, object_store: str | None = None):
        """``actor_id``: one of several actors (robot_rl.learner.ray_actors), appending to its own store
        ``online/actor_<id>.zarr`` (a store has one writer) with ``actor_id`` in each episode's info.
        ``object_store``: the run's stores and checkpoints are under that URL, not in ``run_dir``."""
        from robot_rl.learner.policy import load_policy

        self.run_dir, self.max_lag, self.poll_s, self.echo = Path(run_dir), max_lag, poll_s, echo
        self.exit_when_finished = exit_when_finished
        self.actor_id, self.peer_steps, self.peers = actor_id, 0, 0
        self.root = as_root(object_store) if object_store else self.run_dir  # robot_rl.learner.run_storage
        self.heartbeat = Heartbeat(run_dir, "fast twin" if actor_id is None else f"fast twin {actor_id}")
        self.heartbeat.beat("starting", force=True)
        while True:
            self.published = wait_until_acting(self.root, heartbeat=self.heartbeat, echo=echo)
            try:
                self.agent, env, cfg, _ = load_policy(self.published.folder)  # the run's twin: task, dynamics
                break
            except FileNotFoundError as err:
                if self.published.folder.exists():  # something else is missing (e.g. an old checkpoint's spec)
                    raise
                echo(f"actor: {self.published.folder.name} was pruned while it loaded ({err}); taking the newest")
        store = online_store(self.root) if actor_id is None else actor_store(self.root, actor_id)
        self.writer = StoreWriter.open_or_create(store, env.embodiment, on_tail="drop")
        self.rollouts = Rollouts([env], self.writer,
                                 seed=ACTOR_SEED_OFFSET + 1000 * int(cfg.seed) + ACTOR_ID_SEEDS * (actor_id or 0),
                                 first_episode=self.writer.num_episodes, source="policy",
                                 episode_info={} if actor_id is None else {"actor_id": actor_id})
        self.reloads, self.episodes = 0, 0
        echo(f"actor: acting with {self.published.folder.name} on {cfg.robot}/{cfg.task}")

    def run(self) -> int:
        """Act until the learner says it is finished; returns the episodes committed."""
        policy = lambda obs: self.agent.act(obs)  # noqa: E731  sampled actions: the policy explores
        steps = 0
        while True:
            if steps % CHECK_EVERY == 0:  # two small file reads (and one per other actor): not on every step
                self._reload_if_newer()
                self._count_peer_steps()
            if self.published.finished:
                self.echo(f"actor: the learner finished; {self.episodes} episodes committed, "
                          f"{self.reloads} checkpoints reloaded")
                if not self.exit_when_finished:
                    self.stay_until_stopped()
                return self.episodes
            if self._ahead():
                self.heartbeat.beat(f"paused {self.max_lag} steps ahead of {self.published.folder.name}")
                time.sleep(self.poll_s)
                steps = 0  # look for a newer checkpoint at once
                continue
            steps += 1
            self.heartbeat.beat(f"{self.writer.num_steps} steps committed, acting with {self.published.folder.name}")
            for episode in self.rollouts.step(policy):
                self.episodes += 1
                if self.episodes % 25 == 0:
                    self.echo(f"actor: {self.writer.num_steps} steps, {self.episodes} episodes, last return "
                              f"{episode.episode_return:.2f}, policy {self.published.folder.name}")

    def stay_until_stopped(self) -> None:
        """``--keep-running-when-finished`` (role=all): the supervisor stops this process once the learner
        has exited; exiting first would end the graph as a failure while the learner still writes."""
        while True:
            self.heartbeat.beat("the learner finished; waiting to be stopped")
            time.sleep(0.5)

    def _ahead(self) -> bool:
        """Whether the committed steps the newest checkpoint has not consumed reach ``max_lag`` per actor:
        this actor's, or with several the run's total, so a dead actor's share goes to the live ones."""
        unconsumed = self.writer.num_steps + self.peer_steps - self.published.env_steps
        return unconsumed >= self.max_lag * (1 + self.peers)

    def _count_peer_steps(self) -> None:
        if self.actor_id is None:
            return
        others = [url for url in actor_stores(self.root) if url != actor_store(self.root, self.actor_id)]
        self.peers, self.peer_steps = len(others), sum(committed_steps(url) for url in others)

    def _reload_if_newer(self) -> None:
        published = newest_published(self.root)
        if published is None or published == self.published:
            return
        if published.folder == self.published.folder:  # rewritten under its name (the last publish, then the
            self.published = published                  # final evaluation's, finished): the same weights
            return
        try:
            load_weights(self.agent, published.folder)
        except (OSError, RuntimeError) as err:  # pruned or half-visible: the next look gets a newer one
            self.echo(f"actor: could not load {published.folder.name} ({err}); keeping {self.published.folder.name}")
            return
        self.published = published
        self.reloads += 1

    def close(self) -> None:
        self.rollouts.close()
        self.writer.close()


def committed_steps(url) -> int:
    """The steps committed to a store (the last entry of its commit record; 0 while it is being created)."""
    try:
        ends = open_root(url)["meta/episode_ends"]
    except StoreError:
        return 0
    return int(ends[ends.shape[0] - 1]) if ends.shape[0] else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.learner.actor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="the finetune run folder (checkpoints/, online.zarr)")
    parser.add_argument("--max-lag", type=int, default=50,
                        help="committed steps the actor may run ahead of the newest checkpoint's consumption")
    parser.add_argument("--keep-running-when-finished", action="store_true",
                        help="do not exit when the learner finishes; wait to be stopped (a graph the learner ends)")
    parser.add_argument("--object-store", default=None,
                        help="the run's object_store URL (stores and checkpoints there, not in the run folder)")
    args = parser.parse_args(argv)
    if args.max_lag < 1:
        parser.error(f"--max-lag: expected a positive number of steps, found {args.max_lag}")
    signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's stop, or its death: as Ctrl-C
    import torch

    torch.set_num_threads(1)  # one core for the twin and the policy, the other for the learner
    actor, ended = None, "crashed (its log says why)"
    try:
        actor = TwinActor(args.run_dir, max_lag=args.max_lag, exit_when_finished=not args.keep_running_when_finished,
                          object_store=args.object_store)
        actor.run()
        ended = "the learner finished"
    except KeyboardInterrupt:  # the episode in progress is dropped; every committed one is kept
        ended = "stopped (Ctrl-C or SIGTERM)"
        return 130
    finally:
        if actor is not None:
            actor.close()
        Heartbeat(args.run_dir, "fast twin").stop(ended)  # the learner knows at once, not after STALE_S
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
