"""Success rate against online steps on WidowXPickPlace: SAC from scratch, offline Cal-QL only, RLPD
and WSRL, with the same budgets and seeds, from one scripted-demo dataset.

    python benchmarks/learning_curves.py                 # the CPU profile (2 cores, about an hour)
    python benchmarks/learning_curves.py --quick         # a few minutes: checks the pipeline, not the ranking
    python benchmarks/learning_curves.py --profile paper # the papers' networks and UTD (for a GPU)

Writes runs/bench/learning_curves/curves.csv (one row per evaluation) and curves.png, and prints the
final table. Every run is a `robot-rl train` subprocess with threads=1; two run at a time.

The CPU profile keeps each algorithm's structure (RLPD's 50/50 batches and LayerNorm ensemble, WSRL's
Cal-QL pretraining, warmup and offline-free fine-tuning) but shrinks the arithmetic to fit two cores
(a Cal-QL update of E = 10 x 2 x 256 at batch 256 takes about 0.9 s on one core here): 128-unit layers,
batch 128, E = 5 with min over 2, RLPD at UTD 4 instead of 20, WSRL at UTD 2 instead of 4 with a
1000-step warmup instead of 5000 (the budget is 12000 online steps), 4000 offline updates. Offline
Cal-QL runs as many updates as WSRL's pretraining and is drawn flat over the online budget.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from robot_rl.learner.metrics import read_evaluations

console = Console(width=140)
OUT = Path("runs/bench/learning_curves")

# Per-algorithm overrides of the CPU profile. All: 128-unit layers, batch 128, discount 0.9 with 3-step
# returns (80-step episodes at 5 Hz). Online-from-scratch learners (SAC, RLPD): learning rates 1e-3 and
# initial temperature 0.05, the settings that solve WidowXReach in tests/test_learning.py. Cal-QL
# phases: 5 sampled actions of each kind instead of 10, and target entropy 0 (-|A| collapses the
# policy's gripper onto one tanh edge within a few hundred updates, where its gradient vanishes).
SHARED = ["algo.agent.hidden=[128,128]", "algo.batch_size=128", "algo.discount=0.9", "algo.n_step=3"]
ENSEMBLE = ["algo.agent.ensemble_size=5", "algo.agent.target_subset=2", "algo.agent.layer_norm=true"]
ONLINE = ["algo.agent.init_temperature=0.05", "algo.agent.actor_lr=1e-3", "algo.agent.critic_lr=1e-3"]
CALQL = ["algo.agent.n_actions=5", "algo.agent.target_entropy_scale=0"]
PROFILES = {
    "cpu": {"sac": SHARED + ONLINE, "calql_offline": SHARED + ENSEMBLE + CALQL,
            "rlpd": SHARED + ENSEMBLE + ONLINE + ["algo.schedule.utd=4"],
            "wsrl": SHARED + ENSEMBLE + CALQL + ["algo.schedule.utd=2"]},
    "paper": {"sac": [], "calql_offline": [], "rlpd": [], "wsrl": []},
}


def algorithms(dataset: Path, online: int, offline: int, warmup: int) -> dict[str, list[str]]:
    return {
        "sac": ["algo=sac", f"algo.schedule.random_steps={min(1000, online // 5)}", f"algo.schedule.online_steps={online}"],
        "calql_offline": ["algo=calql", f"dataset={dataset}", f"algo.schedule.offline_updates={offline}"],
        "rlpd": ["algo=rlpd", f"dataset={dataset}", f"algo.schedule.online_steps={online}"],
        "wsrl": ["algo=wsrl", f"dataset={dataset}", f"algo.schedule.offline_updates={offline}",
                 f"algo.schedule.warmup_steps={warmup}", f"algo.schedule.online_steps={online}"],
    }


def collect(dataset: Path, episodes: int) -> None:
    if dataset.exists():
        return
    subprocess.run([sys.executable, "-m", "robot_rl.cli.main", "collect", "robot=widowx", "task=pick_place",
                    f"episodes={episodes}", f"out={dataset}", f"run_dir={OUT / 'collect'}"], check=True)


def train(name: str, seed: int, overrides: list[str], eval_every: int, episodes: int) -> Path:
    run_dir = OUT / f"{name}_seed{seed}"
    cmd = [sys.executable, "-m", "robot_rl.cli.main", "train", "task=widowx_pick_place", f"seed={seed}",
           f"eval.every_env_steps={eval_every}", "eval.every_updates=0", f"eval.episodes={episodes}",
           "eval.video=false", "threads=1", f"run_dir={run_dir}", *overrides]
    with open(OUT / f"{name}_seed{seed}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return run_dir


def curve_rows(name: str, seed: int, run_dir: Path, online: int) -> list[dict]:
    evals = read_evaluations(run_dir)
    if name == "calql_offline":  # no online phase: its final evaluation, flat over the online budget
        last = evals[-1]
        return [{"algo": name, "seed": seed, "env_steps": s, "success_rate": last["success_rate"],
                 "return": last["return"]} for s in (0, online)]
    online_evals = [e for e in evals if e["phase"] not in ("offline", "start")] or evals
    pretrained = [e for e in evals if e["phase"] == "offline"][-1:]
    return [{"algo": name, "seed": seed, "env_steps": int(e["env_steps"]), "success_rate": e["success_rate"],
             "return": e["return"]} for e in [*pretrained, *online_evals]]


def plot(rows: list[dict], path: Path) -> None:
    """Success rate and (dense, staged) return against online steps: mean over seeds, band min..max."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric, label in ((axes[0], "success_rate", "evaluation success rate"),
                              (axes[1], "return", "evaluation return (staged reward, 80 steps)")):
        for algo in dict.fromkeys(r["algo"] for r in rows):
            mine = [r for r in rows if r["algo"] == algo]
            steps = sorted({r["env_steps"] for r in mine})
            by_step = [[r[metric] for r in mine if r["env_steps"] == s] for s in steps]
            ax.plot(steps, [np.mean(v) for v in by_step], marker="o", label=algo)
            ax.fill_between(steps, [min(v) for v in by_step], [max(v) for v in by_step], alpha=0.2)
        ax.set(xlabel="online environment steps", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend()
    fig.suptitle("WidowXPickPlace twin, scripted demonstrations")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def report(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for col in ("algorithm", "success at 0 online steps", "success at end", "return at 0", "return at end"):
        table.add_column(col, justify="right")
    for algo in dict.fromkeys(r["algo"] for r in rows):
        mine = [r for r in rows if r["algo"] == algo]
        first = [r for r in mine if r["env_steps"] == min(x["env_steps"] for x in mine)]
        last = [r for r in mine if r["env_steps"] == max(x["env_steps"] for x in mine)]
        mean = lambda rs, k: sum(float(r[k]) for r in rs) / len(rs)  # noqa: E731
        table.add_row(algo, f"{mean(first, 'success_rate'):.0%}", f"{mean(last, 'success_rate'):.0%}",
                      f"{mean(first, 'return'):.1f}", f"{mean(last, 'return'):.1f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--demos", type=int, default=50)
    parser.add_argument("--replot", action="store_true", help="redraw the PNG and table from curves.csv")
    args = parser.parse_args()
    if args.replot:
        with open(OUT / "curves.csv", newline="") as f:
            rows = [{**r, "env_steps": int(r["env_steps"]), "success_rate": float(r["success_rate"]),
                     "return": float(r["return"])} for r in csv.DictReader(f)]
        plot(rows, OUT / "curves.png")
        report(rows, f"{OUT / 'curves.csv'}")
        return
    online, offline, warmup, eval_every, episodes, seeds = (
        (600, 300, 200, 200, 3, 1) if args.quick else (12000, 4000, 1000, 1500, 10, 2))
    seeds = args.seeds or seeds
    OUT.mkdir(parents=True, exist_ok=True)
    dataset = OUT / f"pick_place_demos{args.demos}.zarr"
    collect(dataset, args.demos)
    profile = PROFILES[args.profile]
    jobs = [(name, seed, [*overrides, *profile[name]])
            for name, overrides in algorithms(dataset.resolve(), online, offline, warmup).items()
            for seed in range(seeds)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda job: (job[0], job[1], train(job[0], job[1], job[2], eval_every, episodes)), jobs))
    rows = [row for name, seed, run_dir in runs for row in curve_rows(name, seed, run_dir, online)]
    with open(OUT / "curves.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["algo", "seed", "env_steps", "success_rate", "return"])
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, OUT / "curves.png")
    report(rows, f"WidowXPickPlace, {args.demos} demos, {online} online steps, {seeds} seed(s), "
                 f"profile {args.profile}")
    console.print(f"wrote {OUT / 'curves.csv'} and {OUT / 'curves.png'}")


if __name__ == "__main__":
    main()
