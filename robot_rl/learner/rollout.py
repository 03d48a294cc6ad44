"""The actor side of training: step the twins with the current policy, commit every finished episode
to the run's online store, and evaluate.

``num_envs`` twins step in lock-step in this process, with one batched policy call per tick. An
episode reaches the store only when it ends, so a killed run loses at most the episodes in progress.
With action chunks a :class:`~robot_rl.learner.chunking.ChunkExecutor` per env decides when to query
(default: every h steps, the chunk open-loop; or k <= h steps, or temporal ensembling).

``operators`` (one per env, robot_rl.learner.scripted_operator): a scripted operator that may take over
an env's tick; its action replaces the policy's (the env's open-loop chunk is dropped, so the policy
queries afresh when it hands back), the row's ``intervention`` is True (when the store has the key) and
the episode's info counts ``interventions`` and ``human_steps``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot_rl.datasets import StoreWriter
from robot_rl.learner.chunking import ChunkExecutor


@dataclass
class EpisodeStats:
    steps: int
    episode_return: float
    success: bool


@dataclass
class _Running:
    obs: dict
    executor: ChunkExecutor
    frames: list = field(default_factory=list)
    episode_return: float = 0.0
    success: bool = False
    seed: int = 0
    human_steps: int = 0
    interventions: int = 0
    human: bool = False


Policy = Callable[[dict[str, np.ndarray]], np.ndarray]  # batched obs -> [N, A] or [N, h, A]


class Rollouts:
    def __init__(self, envs: list, writer: StoreWriter, *, seed: int, first_episode: int = 0, source: str = "policy",
                 executor: Callable[[], ChunkExecutor] = ChunkExecutor, episode_info: dict | None = None,
                 operators: list | None = None):
        self.envs, self.writer, self.seed, self.source = envs, writer, seed, source
        if operators is not None and len(operators) != len(envs):
            raise ValueError(f"operators: expected one per env ({len(envs)}), found {len(operators)}")
        self.operators = operators
        self.marks_interventions = "intervention" in writer.spec.optional_keys
        self.episode_info = dict(episode_info or {})  # recorded in every episode's info (e.g. the actor's id)
        self.make_executor = executor
        self.episodes_started = first_episode
        self.rng = np.random.default_rng([seed, first_episode])
        self.running = [self._reset(env) for env in envs]

    def _reset(self, env) -> _Running:
        seed = self.seed + self.episodes_started
        self.episodes_started += 1
        obs, _ = env.reset(seed=seed)
        if self.operators is not None:
            self.operators[self.envs.index(env)].new_episode()
        return _Running(obs, self.make_executor(), seed=seed)

    def step(self, policy: Policy | None) -> list[EpisodeStats]:
        """One tick of every env (``policy=None``: uniform random actions); returns the episodes that
        ended and were committed."""
        needs = [i for i, r in enumerate(self.running) if r.executor.needs_query()]
        if needs:
            if policy is None:
                chunks = self.rng.uniform(-1, 1, (len(needs), 1, self.envs[0].action_space.shape[0]))
            else:
                chunks = policy(_stack([self.running[i].obs for i in needs]))
                chunks = chunks[:, None] if chunks.ndim == 2 else chunks
            for i, chunk in zip(needs, chunks):
                self.running[i].executor.push(chunk)
        finished = []
        for i, (env, run) in enumerate(zip(self.envs, self.running)):
            action = np.asarray(run.executor.next_action(), dtype=np.float32)
            human_action = self.operators[i].act() if self.operators is not None else None
            if human_action is not None:
                action = np.asarray(human_action, dtype=np.float32)
                run.executor.reset()
            run.interventions += human_action is not None and not run.human
            run.human = human_action is not None
            run.human_steps += run.human
            timestamp = env.unwrapped.time
            next_obs, reward, terminated, truncated, info = env.step(action)
            run.frames.append({**run.obs, "action": action, "reward": reward, "terminated": terminated,
                               "truncated": truncated, "timestamp": timestamp,
                               **({"intervention": run.human} if self.marks_interventions else {})})
            run.episode_return += reward
            run.success |= bool(info.get("success", False))
            run.obs = next_obs
            if terminated or truncated:
                finished.append(self._commit(run, env))
                self.running[i] = self._reset(env)
        return finished

    def _commit(self, run: _Running, env) -> EpisodeStats:
        instruction = getattr(env.unwrapped, "instruction", "")
        hil = {"interventions": run.interventions, "human_steps": run.human_steps} if self.operators else {}
        with self.writer.new_episode(instruction=instruction, source=self.source, seed=run.seed,
                                     **self.episode_info, **hil) as episode:
            for frame in run.frames:
                episode.add(frame)
            episode.commit(success=run.success)
        return EpisodeStats(len(run.frames), run.episode_return, run.success)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def evaluate(policy: Policy, env, episodes: int, seed: int, video: list | None = None,
             video_episodes: int = 1, executor: Callable[[], ChunkExecutor] = ChunkExecutor) -> dict[str, float]:
    """Success rate, mean return and length of ``episodes`` rollouts from seeds ``seed + i``. Frames of
    the first ``video_episodes`` go to ``video`` (the env's first camera) when a list is given."""
    returns, successes, lengths = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        chunks, done, total, success, steps = executor(), False, 0.0, False, 0
        while not done:
            if video is not None and i < video_episodes:
                video.append(env.unwrapped.render())
            if chunks.needs_query():
                chunks.push(policy(_stack([obs]))[0])
            obs, reward, terminated, truncated, info = env.step(chunks.next_action())
            total += reward
            success |= bool(info.get("success", False))
            steps += 1
            done = terminated or truncated
        returns.append(total)
        successes.append(success)
        lengths.append(steps)
    return {"success_rate": float(np.mean(successes)), "return": float(np.mean(returns)),
            "episode_length": float(np.mean(lengths))}


def _stack(observations: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
