"""Roll a policy out on a twin and record each episode into the store, one frame per control tick.

Frame ``t`` holds ``obs_t`` (every observation key of the spec), ``action_t``, ``reward_t``, the
gymnasium flags and the simulated time of ``obs_t``; this is the store's step layout.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robot_rl.datasets import StoreWriter

Policy = Callable[[dict], np.ndarray]


@dataclass(frozen=True)
class EpisodeResult:
    index: int       # the episode's index in the store
    steps: int
    success: bool
    episode_return: float


def record_episode(env, policy: Policy, writer: StoreWriter, *, seed: int, source: str,
                   instruction: str | None = None, on_reset: Callable[[], None] | None = None,
                   **info) -> EpisodeResult:
    """Run one episode of ``policy`` on ``env`` from ``reset(seed=seed)`` and commit it.

    ``on_reset`` runs right after the reset (an expert forgets its last plan there). If anything
    fails mid-episode, the episode is discarded and the store keeps every earlier one.
    """
    obs, _ = env.reset(seed=seed)
    if on_reset is not None:
        on_reset()
    instruction = getattr(env.unwrapped, "instruction", "") if instruction is None else instruction
    success, episode_return, steps = False, 0.0, 0
    with writer.new_episode(instruction=instruction, source=source, seed=seed, **info) as episode:
        done = False
        while not done:
            timestamp = env.unwrapped.time
            action = np.asarray(policy(obs), dtype=np.float32)
            next_obs, reward, terminated, truncated, step_info = env.step(action)
            episode.add({**obs, "action": action, "reward": reward, "terminated": terminated,
                         "truncated": truncated, "timestamp": timestamp})
            success |= bool(step_info.get("success", False))
            episode_return += reward
            steps += 1
            obs, done = next_obs, terminated or truncated
        index = episode.commit(success=success)
    return EpisodeResult(index, steps, success, episode_return)
