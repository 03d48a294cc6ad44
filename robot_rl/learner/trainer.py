"""The training loop: run an algorithm's phases in order, on the offline dataset and on the twin, with
evaluation, TensorBoard, checkpoints after every evaluation, and resume from the last one.

Counters (``state``): ``phase`` (index into the plan), ``progress`` (updates or env steps done in
that phase), ``env_steps``, ``critic_updates`` and ``cycles`` (UTD cycles) over the run. A resumed run
restores them, the weights, optimizers and RNGs from the last checkpoint; the online store keeps every
episode committed before the kill, including those after the checkpoint.

``actor=external`` (what `robot-rl finetune` runs): no twin steps here. Another process, the actor,
acts with the newest checkpoint and appends episodes to ``run_dir/online.zarr``; online phases consume
them in order (``env_steps`` counts the rows consumed) at the phase's UTD, waiting while the actor has
sent nothing new, and a checkpoint is published every ``publish_every`` consumed steps for the actor to
hot-reload. The store and the run folder are the only link, so the two can run on different machines.
Each checkpoint's ``actor`` entry says whether the actor should act yet (``acting``: an online phase
has begun, so not during offline pretraining) and whether training is over (``finished``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robot_rl.algos import ALGORITHMS
from robot_rl.algos.plan import Phase
from robot_rl.algos.sac import ObservationShapes
from robot_rl.learner.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from robot_rl.learner.heartbeat import ActorStatus, actor_status, restart_actor_command
from robot_rl.learner.metrics import Metrics
from robot_rl.learner.replay import Replay
from robot_rl.learner.rollout import Rollouts, evaluate
from robot_rl.learner.run_storage import checkpoints_folder, child, shared_root
from robot_rl.learner.video import write_mp4

TRAIN_SEED_OFFSET = 1_000_000  # training episodes never reuse the seeds of collected demonstrations


@dataclass
class TrainState:
    phase: int = 0
    progress: int = 0
    env_steps: int = 0
    critic_updates: int = 0
    cycles: int = 0
    episodes: int = 0
    last_episode: dict = field(default_factory=dict)
    phase_log: list = field(default_factory=list)  # per finished phase: counters and rows drawn


def make_twin(cfg: DictConfig):
    from robot_rl.sim import make_env

    return make_env(cfg.robot, cfg.task, reward_type=cfg.reward_type, cameras=tuple(cfg.cameras),
                    image_size=tuple(cfg.image_size), dynamics=dict(cfg.sim.dynamics), max_steps=cfg.max_steps,
                    terminate_on_success=cfg.terminate_on_success)


def online_store(root) -> Path | str:
    """The run's online episodes (the actor's), next to its checkpoints, under the run's shared root: the
    run folder, or the ``object_store`` URL (robot_rl.learner.run_storage)."""
    return child(root, "online.zarr")


def observation_shapes(spec, keys: tuple[str, ...]) -> ObservationShapes:
    specs = spec.keys()
    return ObservationShapes(
        state={k: int(np.prod(specs[k].shape)) for k in keys if k not in spec.cameras},
        cameras={k: tuple(specs[k].shape) for k in keys if k in spec.cameras})


def build_agent(cfg: DictConfig, spec):
    algo = ALGORITHMS[cfg.algo.name]
    keys = (*cfg.obs_keys, *cfg.cameras)
    config = algo.Agent.config_class.from_dict(OmegaConf.to_container(cfg.algo.agent))
    return algo.Agent(observation_shapes(spec, keys), spec.keys()["action"].shape[0], config)


def dataset_instructions(url, demos: int | None) -> list[str]:
    """The non-empty instruction of each episode training reads (the first ``demos``, or all)."""
    from robot_rl.datasets import TrajectoryReader

    reader = TrajectoryReader(url)
    n = reader.num_episodes if demos is None else min(int(demos), reader.num_episodes)
    return [text for text in (reader.episode_info(i).get("instruction", "") for i in range(n)) if text]


def scripted_operators(cfg, envs) -> list:
    """One scripted operator per twin (robot_rl.learner.scripted_operator), ``takeover_budget`` ticks split
    between them."""
    from robot_rl.learner.scripted_operator import ScriptedOperator

    budget = cfg.get("takeover_budget")
    return [ScriptedOperator(env, seed=cfg.seed + k, max_human_ticks=None if budget is None else budget // len(envs))
            for k, env in enumerate(envs)]


def keep_first_episodes(replay: Replay, demos, url) -> None:
    """``demos=N``: sample only the first N episodes of the offline dataset (weight 0 on the rest)."""
    if replay.offline is None:
        raise ValueError(f"demos={demos}: picks episodes of an offline dataset, but no dataset= was given")
    episodes = len(replay.offline.source.episode_ends)
    if isinstance(demos, bool) or not isinstance(demos, int) or not 1 <= demos <= episodes:
        raise ValueError(f"demos: expected an integer from 1 to {episodes} (the episodes in dataset={url}), "
                         f"found {demos!r}; record more with `robot-rl collect` or lower demos")
    replay.offline.set_episode_weights(np.arange(episodes) < demos)


def state_statistics(source, keys: tuple[str, ...], demos: int | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per key: mean and std over the rows of the episodes training samples (the first ``demos``, or all)."""
    ends = source.episode_ends
    rows = int(ends[demos - 1] if demos else ends[-1])
    columns = {k: np.asarray(source.column(k)[:rows], dtype=np.float64).reshape(rows, -1) for k in keys}
    return {k: (x.mean(0), x.std(0)) for k, x in columns.items()}


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, progress=None):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        algo = ALGORITHMS[cfg.algo.name]
        self.phases = [p for p in algo.plan(cfg.algo.schedule) if p.length > 0]
        if any(p.offline_ratio > 0 for p in self.phases) and not cfg.dataset:
            raise ValueError(f"algo={cfg.algo.name} trains on an offline dataset: give dataset=<store path> "
                             "(record one with `robot-rl collect`)")
        torch.manual_seed(cfg.seed)
        self.external = cfg.get("actor", "internal") == "external"
        envs = [] if self.external else [make_twin(cfg) for _ in range(cfg.num_envs)]
        self.eval_env = make_twin(cfg)
        spec = self.eval_env.embodiment
        self.keys = (*cfg.obs_keys, *cfg.cameras)
        reads_instructions = algo.Agent.reads_instructions and cfg.dataset
        algo.Agent.configure(cfg, self.eval_env,  # settings the run decides (CO-RFT's instruction), saved with it
                             dataset_instructions(cfg.dataset, cfg.get("demos")) if reads_instructions else [])
        self.agent = build_agent(cfg, spec).to(cfg.device)
        self.shared = shared_root(cfg, self.run_dir)  # online stores and checkpoints: here or object_store
        takeover = bool(cfg.get("takeover", False)) and not self.external  # the twin's scripted operator
        self.replay = Replay(spec.with_optional("intervention") if takeover else spec, self.keys,
                             online_store(self.shared), cfg.dataset,
                             batch_size=cfg.algo.batch_size, discount=cfg.algo.discount, n_step=cfg.algo.n_step,
                             chunk=self.agent.config.chunk, seed=cfg.seed, device=cfg.device,
                             writer=not self.external, hil_ratio=cfg.get("hil_ratio", 0.5))
        if cfg.get("demos") is not None:
            keep_first_episodes(self.replay, cfg.demos, cfg.dataset)
        if self.replay.offline is not None:  # encoders that normalize read the data they train on
            self.agent.set_state_statistics(state_statistics(self.replay.offline.source, tuple(self.agent.shapes.state),
                                                             cfg.get("demos")))
        self.state = TrainState()
        checkpoint = latest_checkpoint(checkpoints_folder(self.shared)) if cfg.resume else None
        if checkpoint is not None:
            saved = load_checkpoint(checkpoint, self.agent, self.agent.optimizers)
            self.replay.restore(saved.pop("replay"))
            saved.pop("actor", None)
            self.state = TrainState(**saved)
            try:
                self.reopen_last_phase()
            except ValueError:
                for env in (*envs, self.eval_env):
                    env.close()
                self.replay.close()  # its online store's writer lock
                raise
        self.rollouts = None if self.external else Rollouts(
            envs, self.replay.writer, seed=TRAIN_SEED_OFFSET + 1000 * cfg.seed,
            first_episode=self.replay.writer.num_episodes, operators=scripted_operators(cfg, envs) if takeover else None)
        self.metrics = Metrics(self.run_dir)
        self.resumed_from = checkpoint
        self.last_eval: dict | None = None
        self.waiting = False  # actor=external: every step the actor sent is consumed
        self.actor: ActorStatus | None = None  # actor=external, while waiting: what its heartbeat says
        self._actor_checked = self._actor_said = -float("inf")
        self._last_line = time.monotonic()

    def reopen_last_phase(self) -> None:
        """A finished run resumed with a larger online budget continues its last (online) phase from the
        env steps it took; one with nothing left to do is refused, naming the fix."""
        s, last = self.state, self.phases[-1]
        if s.phase < len(self.phases):
            return
        taken = s.env_steps - sum(p.env_steps for p in self.phases[:-1])  # online progress counts env steps
        if not last.online or not 0 <= taken < last.length:
            raise ValueError(f"resume=true: {self.run_dir} finished all its phases ({s.env_steps} env steps, "
                             f"{s.critic_updates} critic updates); to train on, give a larger "
                             "algo.schedule.online_steps, or start a new run")
        s.phase, s.progress = len(self.phases) - 1, taken

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> TrainState:
        s = self.state
        if s.phase == 0 and s.progress == 0 and s.critic_updates == 0:
            self.evaluate_and_checkpoint("start")
        while s.phase < len(self.phases):
            phase = self.phases[s.phase]
            self.agent.begin_phase(phase)
            bar = self.progress.add_task(phase.name, total=phase.length, completed=s.progress, status="") \
                if self.progress else None
            drawn_before, updates_before = dict(self.replay.drawn), s.critic_updates
            while s.progress < phase.length:
                if not phase.online:
                    advanced = self.offline_tick(phase)
                else:
                    advanced = self.external_tick(phase) if self.external else self.online_tick(phase)
                s.progress += advanced
                if bar is not None:
                    self.progress.update(bar, advance=advanced, status=self.status())
                    self.print_progress_line(phase)
                if self.eval_due(phase, advanced):
                    self.evaluate_and_checkpoint(phase.name)
                elif self.publish_due(phase, advanced):
                    self.checkpoint()
            s.phase_log.append({"phase": phase.name, "critic_updates": s.critic_updates - updates_before,
                                **{f"{k}_rows": self.replay.drawn[k] - drawn_before.get(k, 0) for k in self.replay.drawn}})
            s.phase, s.progress = s.phase + 1, 0
            self.evaluate_and_checkpoint(phase.name, video=s.phase == len(self.phases) and self.cfg.eval.video)
        return s

    def offline_tick(self, phase: Phase) -> int:
        self.learn(phase)
        return 1

    def online_tick(self, phase: Phase) -> int:
        s = self.state
        policy = None if phase.random_actions else (lambda obs: self.agent.act(obs))
        finished = self.rollouts.step(policy)
        if finished:
            self.replay.refresh()
        for episode in finished:
            s.episodes += 1
            s.last_episode = {"return": episode.episode_return, "success": float(episode.success),
                              "length": episode.steps}
            self.metrics.scalars("rollout", s.last_episode, s.env_steps)
        n = len(self.rollouts.envs)
        s.env_steps += n
        if phase.learn and (phase.offline_ratio == 1.0 or self.replay.online_ready()):
            for _ in range(n):
                self.learn(phase)
        return n

    def external_tick(self, phase: Phase) -> int:
        """Consume up to 64 steps the actor appended (one UTD cycle each, as online_tick); wait for the
        actor when every committed step is consumed."""
        s = self.state
        if self.replay.online_steps <= s.env_steps:
            self.waiting = not self.replay.refresh()
            if self.waiting:
                self.check_actor()
                time.sleep(self.cfg.actor_poll_s)
                return 0
            self.log_actor_episodes()
        n = min(self.replay.online_steps - s.env_steps, phase.length - s.progress, 64)
        s.env_steps += n
        if phase.learn and self.replay.online_ready():
            for _ in range(n):
                self.learn(phase)
        return n

    def check_actor(self, every_s: float = 2.0, repeat_dead_s: float = 60.0) -> None:
        """While waiting: read the actor's heartbeat; say whether an actor is alive when that changes (and
        at the first wait), and every ``repeat_dead_s`` while none is, with the command that starts one."""
        now = time.monotonic()
        if now - self._actor_checked < every_s:
            return
        self._actor_checked = now
        before, self.actor = self.actor, actor_status(self.run_dir)
        changed = before is None or before.alive != self.actor.alive
        if changed or now - self._actor_said >= (repeat_dead_s if not self.actor.alive else float("inf")):
            self._actor_said = now
            self.say(f"waiting for the actor's episodes: {self.actor_note()}")

    def actor_note(self) -> str:
        if self.actor is None:
            return "no heartbeat read yet"
        if self.actor.alive:
            return self.actor.description
        return (f"no actor is alive ({self.actor.description}); start one with "
                f"`{restart_actor_command(self.run_dir)}`")

    def say(self, line: str) -> None:
        """A line in the job's output (and so in its log), beside the progress bar."""
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, flush=True)

    def log_actor_episodes(self) -> None:
        s, reader = self.state, self.replay.online_reader
        rewards, ends = reader.column("reward"), reader.episode_ends
        for i in range(s.episodes, reader.num_episodes):
            start = int(ends[i - 1]) if i else 0
            s.last_episode = {"return": float(rewards[start:ends[i]].sum()),
                              "success": float(bool(reader.episode_info(i).get("success"))),
                              "length": int(ends[i]) - start}
            self.metrics.scalars("rollout", s.last_episode, int(ends[i]))
        s.episodes = reader.num_episodes

    def learn(self, phase: Phase) -> None:
        s = self.state
        batches = [self.replay.sample(phase.offline_ratio) for _ in range(phase.utd)]
        info = self.agent.update(batches)
        s.critic_updates += phase.utd
        s.cycles += 1
        if s.cycles % self.cfg.log_every == 0:
            self.metrics.scalars("training", info, s.critic_updates)

    # --- evaluation and checkpoints --------------------------------------------------------------
    def eval_due(self, phase: Phase, advanced: int) -> bool:
        every = self.cfg.eval.every_env_steps if phase.online else self.cfg.eval.every_updates
        done = self.state.progress
        return bool(every) and done < phase.length and done // every > (done - advanced) // every

    def publish_due(self, phase: Phase, advanced: int) -> bool:
        """actor=external: a checkpoint for the actor every ``publish_every`` consumed steps."""
        every, done = self.cfg.publish_every, self.state.env_steps
        return self.external and phase.online and done // every > (done - advanced) // every

    def evaluate_and_checkpoint(self, phase_name: str, video: bool = False) -> dict:
        s, cfg = self.state, self.cfg
        frames = [] if video else None
        result = evaluate(lambda obs: self.agent.act(obs, deterministic=True), self.eval_env,
                          cfg.eval.episodes, cfg.eval.seed, frames)
        row = {"phase": phase_name, "env_steps": s.env_steps, "updates": s.critic_updates, **result}
        self.metrics.evaluation(row)
        self.last_eval = row
        if self.progress is not None:  # one line per evaluation, also in logs that are not a terminal
            self.progress.console.print(
                f"eval [{phase_name}] env steps {s.env_steps} updates {s.critic_updates}: success "
                f"{result['success_rate']:.0%} return {result['return']:.2f}", markup=False, highlight=False)
        if frames:
            write_mp4(self.run_dir / "videos" / f"eval_{s.env_steps:08d}.mp4", frames,
                      self.eval_env.unwrapped.control_rate_hz)
        self.checkpoint()
        return row

    def checkpoint(self) -> Path:
        s = self.state
        acting = s.phase >= len(self.phases) or self.phases[s.phase].online
        state = {**s.__dict__, "replay": self.replay.state(),
                 "actor": {"acting": acting, "finished": s.phase >= len(self.phases)}}
        name = f"step_{s.critic_updates:010d}_{s.env_steps:09d}"
        return save_checkpoint(checkpoints_folder(self.shared), name, self.agent, self.agent.optimizers, state,
                               OmegaConf.to_yaml(self.cfg), spec=self.eval_env.embodiment,
                               keep=self.cfg.keep_checkpoints)

    def print_progress_line(self, phase: Phase, every_s: float = 15.0) -> None:
        """A line every ``every_s`` where the bar cannot redraw (a log, or a supervisor's pipe)."""
        now = time.monotonic()
        if self.progress.console.is_terminal or now - self._last_line < every_s:
            return
        self._last_line = now
        self.progress.console.print(f"{phase.name}: {self.state.progress}/{phase.length} {self.status()}",
                                    markup=False, highlight=False)

    def status(self) -> str:
        s, parts = self.state, [f"waiting for the actor's episodes ({self.actor_note()})"] if self.waiting else []
        if s.last_episode:
            parts.append(f"return {s.last_episode['return']:.2f} success {s.last_episode['success']:.0f}")
        if self.last_eval:
            parts.append(f"eval {self.last_eval['success_rate']:.0%}")
        return " | ".join(parts)

    def close(self) -> None:
        if self.rollouts is not None:
            self.rollouts.close()
        self.eval_env.close()
        self.replay.close()
        self.metrics.close()

