"""How far trained policies' deterministic actions are from the demonstrations, on the demonstrations'
own states: the action MSE per dimension, and for a gripper (the last dimension, -1 closed) how often the
policy opens it where the demonstrator held it closed, and the reverse.

    python benchmarks/policy_vs_demos.py runs/bench/learning_curves/pick_place_demos50_noise0.05.zarr \
        runs/bench/learning_curves/pick_place_td3bc/bc_seed0 runs/bench/learning_curves/pick_place_td3bc/calql_offline_seed0
"""
from __future__ import annotations

import argparse

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
    parser.add_argument("--every", type=int, default=3, help="use every n-th step of the store")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reader = TrajectoryReader(args.store)
    rows = np.arange(0, reader.num_steps, args.every)
    data = reader.gather("action", rows)
    closed, opened = data[:, -1] < 0, data[:, -1] > 0
    table = Table("policy", "action MSE per dimension", "opens where demo closed", "closes where demo open")
    for checkpoint in args.checkpoints:
        policy = load_agent(checkpoint)
        action = policy.agent.act({k: reader.gather(k, rows) for k in policy.config.obs_keys}, deterministic=True)
        gripper = action[:, -1]
        table.add_row(checkpoint, " ".join(f"{e:.3f}" for e in ((action - data) ** 2).mean(0)),
                      f"{(gripper[closed] > 0).mean():.1%}", f"{(gripper[opened] < 0).mean():.1%}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
