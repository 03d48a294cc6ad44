"""The end point of learning_curves.py runs, measured again on more episodes: each run's last checkpoint
evaluated on ``--episodes`` held-out episodes (the seeds `robot-rl eval` uses, not the training run's
evaluation seeds), per algorithm the mean and range over seeds.

A curve's points are 20 episodes each: at 70% success one point's standard error is about 10 points, so
"above 80%" cannot be read off a single point. Peers (sb3_sac, d3rlpy_*) keep no robot-rl checkpoint and
are skipped.

    python benchmarks/final_eval.py runs/bench/learning_curves/pick_place_chunk2_wbc --episodes 100
    python benchmarks/final_eval.py DIR [DIR ...] --algos bc,ibrl_calql   # several benchmark folders at once

Writes final_eval.csv into each folder and prints one table.
"""
from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

console = Console(width=140)
RUN = re.compile(r"(?P<algo>.+)_seed(?P<seed>\d+)$")


def runs_in(folder: Path, algos: set[str] | None) -> list[tuple[str, int, Path]]:
    """(algorithm, seed, run folder) of every run in ``folder`` with checkpoints."""
    found = []
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        match = RUN.match(run_dir.name)
        if match and (run_dir / "checkpoints").is_dir() and (algos is None or match["algo"] in algos):
            found.append((match["algo"], int(match["seed"]), run_dir))
    return found


def evaluate_run(run_dir: Path, episodes: int, seed: int) -> dict[str, float]:
    from robot_rl.learner.policy import checkpoint_twin, load_agent, twin_config
    from robot_rl.learner.rollout import evaluate

    loaded = load_agent(run_dir)
    env = checkpoint_twin(loaded, twin_config(loaded))
    try:
        return evaluate(lambda obs: loaded.agent.act(obs, deterministic=True), env, episodes, seed)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="learning_curves.py output folders")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=100000, help="episode i resets with seed + i (robot-rl eval's)")
    parser.add_argument("--algos", default=None, help="comma-separated subset (default: every run found)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    algos = set(args.algos.split(",")) if args.algos else None
    results: dict[tuple[str, str], list[dict]] = {}  # by (folder, algorithm): a variant per folder
    for folder in args.folders:
        if not folder.is_dir():
            parser.error(f"{folder}: no such folder; give a learning_curves.py output folder "
                         f"(runs/bench/learning_curves/<task>_<tag>)")
        rows = []
        for algo, seed, run_dir in runs_in(folder, algos):
            result = evaluate_run(run_dir, args.episodes, args.seed)
            rows.append({"algo": algo, "seed": seed, "episodes": args.episodes, **result})
            results.setdefault((folder.name, algo), []).append(rows[-1])
            console.print(f"{run_dir}: {result['success_rate']:.0%} success, return {result['return']:.1f}")
        with open(folder / "final_eval.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["algo", "seed", "episodes", "success_rate", "return", "episode_length"])
            writer.writeheader()
            writer.writerows(rows)
    table = Table(title=f"last checkpoints over {args.episodes} held-out episodes each")
    for col in ("folder", "algorithm", "seeds", "success", "per seed", "return"):
        table.add_column(col, justify="right")
    for (folder_name, algo), rows in results.items():
        success = [r["success_rate"] for r in rows]
        mean = f"{sum(success) / len(rows):.0%} ({min(success):.0%}..{max(success):.0%})"
        table.add_row(folder_name, algo, str(len(rows)), mean, " ".join(f"{s:.0%}" for s in success),
                      f"{sum(r['return'] for r in rows) / len(rows):.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
