"""d3rlpy's CQL or IQL trained offline on a robot_rl trajectory store: the offline peer beside robot_rl's
BC and Cal-QL in learning_curves.py (``--algos ...,d3rlpy_iql,d3rlpy_cql``), or alone:

    python benchmarks/d3rlpy_peer.py --algo iql --task pick_place --updates 4000 \\
        --dataset runs/bench/learning_curves/pick_place_demos50_noise0.05.zarr --run-dir runs/bench/d3rlpy_iql

The store becomes a d3rlpy MDPDataset of what robot_rl's learner reads: train.yaml's ``obs_keys``
concatenated in order, the actions, the dense reward the store recorded, and each episode's end as a
timeout (fixed-horizon episodes; a terminal where the store marks one). ``--profile`` maps
learning_curves.py's (cpu: 128 x 128 MLPs, batch 128, discount 0.9, CQL's learning rates 1e-3, initial
temperature 0.05 and 5 sampled actions; IQL keeps d3rlpy's 3e-4, expectile 0.7, inverse temperature 3);
observations are standardized, targets are one-step (d3rlpy has no n-step returns). Evaluation is
sb3_peer.py's: same twin, episodes (seeds 100000 + i), deterministic actions and evaluations.csv
columns, every row of phase "offline".
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
from pathlib import Path

import numpy as np
import torch
from sb3_peer import twin  # benchmarks/sb3_peer.py: the twin robot-rl train builds

from robot_rl.datasets import TrajectoryReader
from robot_rl.learner.metrics import EVAL_FIELDS
from robot_rl.learner.rollout import evaluate

EVAL_SEED = 100000  # robot_rl/configs/train.yaml eval.seed
OBS_KEYS = ("state", "task_state")  # robot_rl/configs/train.yaml obs_keys: what the learner reads, in order


def mdp_dataset(url: str | os.PathLike, keys: tuple[str, ...] = OBS_KEYS):
    """Every committed episode of the store at ``url`` as a d3rlpy MDPDataset."""
    from d3rlpy.dataset import MDPDataset

    reader = TrajectoryReader(url)
    n = reader.num_steps
    observations = np.concatenate([reader.column(k).reshape(n, -1) for k in keys], axis=1, dtype=np.float32)
    last = np.zeros(n, dtype=bool)
    last[reader.episode_ends - 1] = True
    terminal = last & reader.column("terminated")
    return MDPDataset(observations, reader.column("action").astype(np.float32),
                      reader.column("reward").astype(np.float32), terminals=terminal.astype(np.float32),
                      timeouts=(last & ~terminal).astype(np.float32))


# Per learning_curves profile: the networks, batch and discount of robot_rl's runs in that profile, and CQL's
# learning rates, initial temperature and sampled actions where the CPU profile changes them (IQL: d3rlpy's).
PROFILES = {
    "cpu": dict(hidden=[128, 128], batch_size=128, gamma=0.9,
                cql=dict(actor_learning_rate=1e-3, critic_learning_rate=1e-3, initial_temperature=0.05,
                         n_action_samples=5)),
    "paper": dict(hidden=[256, 256], batch_size=256, gamma=0.99, cql={}),
}


def make_algo(name: str, profile: str, device: str):
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory

    p = PROFILES[profile]
    mlp = VectorEncoderFactory(hidden_units=p["hidden"])
    shared = dict(actor_encoder_factory=mlp, critic_encoder_factory=mlp, batch_size=p["batch_size"],
                  gamma=p["gamma"], observation_scaler=d3rlpy.preprocessing.StandardObservationScaler())
    if name == "cql":
        return d3rlpy.algos.CQLConfig(**shared, **p["cql"]).create(device=device)
    return d3rlpy.algos.IQLConfig(value_encoder_factory=mlp, **shared).create(device=device)


def train(dataset: Path, algo: str, updates: int, task: str, dynamics: str, seed: int, episodes: int,
          device: str, run_dir: Path, eval_every: int = 0, profile: str = "cpu") -> Path:
    """``updates`` gradient steps of d3rlpy's ``algo`` on ``dataset``; evaluations go to run_dir/evaluations.csv."""
    import d3rlpy
    import structlog
    from d3rlpy.logging import NoopAdapterFactory

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # d3rlpy's info logs
    torch.set_num_threads(1)
    d3rlpy.seed(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows_path = run_dir / "evaluations.csv"
    rows_path.unlink(missing_ok=True)
    model, eval_env = make_algo(algo, profile, device), twin(task, dynamics)

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        return model.predict(np.concatenate([obs[k] for k in OBS_KEYS], axis=-1).astype(np.float32))

    def record(step: int) -> None:
        result = evaluate(act, eval_env, episodes, EVAL_SEED)
        new = not rows_path.exists()
        with open(rows_path, "a", newline="") as f:
            writer = csv.DictWriter(f, EVAL_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({"phase": "offline", "env_steps": 0, "updates": step, **result})
        print(f"d3rlpy {algo}: {step} updates, success {result['success_rate']:.0%}, "
              f"return {result['return']:.1f}", flush=True)

    def every(_model, _epoch: int, step: int) -> None:
        if eval_every and step % eval_every == 0 and step < updates:
            record(step)

    model.fit(mdp_dataset(dataset), n_steps=updates, n_steps_per_epoch=updates, show_progress=False,
              logger_adapter=NoopAdapterFactory(), callback=every)
    record(updates)
    eval_env.close()
    return rows_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a robot_rl trajectory store (.zarr)")
    parser.add_argument("--algo", choices=("cql", "iql"), default="iql")
    parser.add_argument("--task", choices=("reach", "pick_place"), default="reach")
    parser.add_argument("--dynamics", default="nominal")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--updates", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=0, help="also evaluate every N updates (0: at the end)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args()
    train(args.dataset, args.algo, args.updates, args.task, args.dynamics, args.seed, args.episodes, args.device,
          args.run_dir, args.eval_every, args.profile)


if __name__ == "__main__":
    main()
