"""How far trained policies' deterministic actions are from the demonstrations, on the demonstrations'
own states: the action MSE per dimension, and for a gripper (the last dimension, -1 closed) how often the
policy is still open at the grasp (the step where the demonstrator closes it), how often it opens later in
the carry, and how often it closes where the demonstrator held it open.

    python benchmarks/policy_vs_demos.py runs/bench/learning_curves/pick_place_demos50_noise0.05.zarr \
        runs/bench/learning_curves/pick_place_td3bc/bc_seed0 runs/bench/learning_curves/pick_place_td3bc/calql_offline_seed0
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from robot_rl.datasets import TrajectoryReader
from robot_rl.learner.policy import load_agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store")
    parser.add_argument("checkpoints", nargs="+", help="run folders or checkpoint folders")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reader = TrajectoryReader(args.store)
    rows = np.arange(reader.num_steps)
    data = reader.gather("action", rows)
    closed, opened = data[:, -1] < 0, data[:, -1] > 0
    grasp = closed & ~np.r_[False, closed[:-1]]  # the first closed step of each closed stretch
    carry = closed & ~grasp
    table = Table("policy", "action MSE per dimension", "still open at the grasp", "opens in the carry",
                  "closes where demo open")
    for checkpoint in args.checkpoints:
        policy = load_agent(checkpoint)
        action = policy.agent.act({k: reader.gather(k, rows) for k in policy.config.obs_keys}, deterministic=True)
        is_open = action[:, -1] > 0
        table.add_row("/".join(Path(checkpoint).parts[-2:]), " ".join(f"{e:.3f}" for e in ((action - data) ** 2).mean(0)),
                      f"{is_open[grasp].mean():.0%} of {grasp.sum()}", f"{is_open[carry].mean():.1%}",
                      f"{(~is_open[opened]).mean():.1%}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
