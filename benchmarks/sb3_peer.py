"""Stable-Baselines3's SAC on a WidowX twin task: the from-scratch peer beside robot_rl's SAC in
learning_curves.py (``--algos ...,sb3_sac``), or alone:

    python benchmarks/sb3_peer.py --task reach --dynamics perturbed --online-steps 12000 --run-dir runs/bench/sb3

The env is the one `robot-rl train` builds (dense reward, fixed 80-step episodes, the observation dict
that SB3's MultiInputPolicy flattens), on the same evaluation episodes (seeds 100000 + i, deterministic
actions, robot_rl's own ``evaluate``) every ``--eval-every`` steps. The run folder gets an
evaluations.csv with robot_rl's columns, so learning_curves.py reads it like any of its runs.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from robot_rl.learner.metrics import EVAL_FIELDS
from robot_rl.learner.rollout import evaluate
from robot_rl.sim import make_env

EVAL_SEED = 100000  # robot_rl/configs/train.yaml eval.seed

# Per learning_curves profile: SB3 keyword arguments matching robot_rl's SAC in that profile.
PROFILES = {
    "cpu": dict(policy_kwargs=dict(net_arch=[128, 128]), batch_size=128, learning_rate=1e-3, gamma=0.9,
                ent_coef="auto_0.05"),
    "paper": dict(policy_kwargs=dict(net_arch=[256, 256]), batch_size=256, learning_rate=3e-4, gamma=0.99,
                  ent_coef="auto_1.0"),
}


def twin(task: str, dynamics: str):
    return make_env("widowx", task, reward_type="dense", dynamics=dynamics,
                    terminate_on_success=False)


def main() -> None:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("reach", "pick_place"), default="reach")
    parser.add_argument("--dynamics", default="nominal")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--online-steps", type=int, default=12000)
    parser.add_argument("--random-steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=1500)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    env, eval_env = twin(args.task, args.dynamics), twin(args.task, args.dynamics)
    model = SAC("MultiInputPolicy", env, learning_starts=args.random_steps, seed=args.seed, device=args.device,
                verbose=0, **PROFILES[args.profile])
    rows_path = args.run_dir / "evaluations.csv"

    def record(phase: str, steps: int) -> None:
        result = evaluate(lambda obs: model.predict(obs, deterministic=True)[0], eval_env, args.episodes, EVAL_SEED)
        new = not rows_path.exists()
        with open(rows_path, "a", newline="") as f:
            writer = csv.DictWriter(f, EVAL_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({"phase": phase, "env_steps": steps, "updates": max(0, steps - args.random_steps),
                             **result})
        print(f"sb3 sac: {steps} env steps, success {result['success_rate']:.0%}, return {result['return']:.1f}",
              flush=True)

    class EvaluateEvery(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0 and self.num_timesteps < args.online_steps:
                record("online", self.num_timesteps)
            return True

    rows_path.unlink(missing_ok=True)
    model.learn(total_timesteps=args.online_steps, callback=EvaluateEvery())
    record("online", args.online_steps)


if __name__ == "__main__":
    main()
