"""Sim-to-real on the twins: H2O against SAC trained only in sim, Cal-QL on the real data only, and naive
sim + real mixing, at the same budgets and seeds, every policy evaluated on "real".

    python benchmarks/sim2real.py            # full: WidowX reach and the RC car, 3 seeds (~25 min on 2 cores)
    python benchmarks/sim2real.py --quick    # a few minutes: checks the pipeline, not the ranking
    python benchmarks/sim2real.py --replot   # redraw the PNG and table from the CSV

"Sim" is the nominal twin (`sim.dynamics=nominal`). "Real" is the twin with the `perturbed` knob set
(mass x1.4, friction x0.6, damping x1.5, actuator gain x0.6, one control step of latency, action and
sensor noise): the real dataset is the scripted expert's episodes recorded there (`robot-rl collect
... sim.dynamics=perturbed`), and every checkpoint of every run is rolled out there, seeds
100000 + i. Methods:

    sac_sim     SAC on the nominal twin only (500 uniform random steps first)
    calql_real  Cal-QL on the real dataset only, as many updates as the online runs make
    naive_mix   RLPD-style symmetric sampling: SAC on batches half real, half sim, no correction
    h2o         H2O: the same batches, the dynamics-ratio-weighted sim TD and the dynamics-gap penalty

All share the twin-tuned CPU profile (128-unit layers, batch 128, discount 0.9, learning rates 1e-3,
initial temperature 0.05; two critics; n_step 1 as H2O's reference; no entropy backup as H2O's
reference) and UTD 1. H2O's discriminators are 2 x 128 instead of the reference's 2 x 256 (half the
arithmetic; the same accuracy on the car's toy test). Cal-QL: 5 sampled actions per kind, target entropy
0 (benchmarks/learning_curves.py). Writes runs/bench/sim2real/sim2real.csv (one row per evaluation on
real) and sim2real.png, and prints the final table. Runs are `robot-rl train` subprocesses with
threads=1, two at a time.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console(width=150)
OUT = Path("runs/bench/sim2real")
REAL = "perturbed"
EVAL_SEED = 100_000

SHARED = ["algo.agent.hidden=[128,128]", "algo.batch_size=128", "algo.discount=0.9", "algo.n_step=1",
          "algo.agent.actor_lr=1e-3", "algo.agent.critic_lr=1e-3", "algo.agent.init_temperature=0.05",
          "algo.agent.backup_entropy=false", "algo.agent.ensemble_size=2", "algo.agent.target_subset=2",
          "algo.agent.layer_norm=false"]
METHODS = {
    "sac_sim": lambda b: ["algo=sac", f"algo.schedule.random_steps={min(500, b // 5)}", f"algo.schedule.online_steps={b}"],
    "calql_real": lambda b: ["algo=calql", "dataset={real}", f"algo.schedule.offline_updates={b}",
                             "algo.agent.n_actions=5", "algo.agent.target_entropy_scale=0"],
    "naive_mix": lambda b: ["algo=rlpd", "dataset={real}", f"algo.schedule.online_steps={b}", "algo.schedule.utd=1",
                            "algo.agent.target_entropy_scale=1.0"],
    "h2o": lambda b: ["algo=h2o", "dataset={real}", f"algo.schedule.online_steps={b}",
                      "algo.agent.discriminator_hidden=[128,128]"],
}
# per task: online steps (= Cal-QL updates), real episodes, evaluations on real per run, episodes each
TASKS = {
    "widowx_reach": {"robot": "widowx", "task": "reach", "budget": 6000, "demos": 20},
    "rc_car_goal": {"robot": "rc_car", "task": "goal", "budget": 8000, "demos": 20},
}


def collect(task: str, spec: dict, demos: int) -> Path:
    store = OUT / f"{task}_real{demos}.zarr"
    if not store.exists():
        subprocess.run([sys.executable, "-m", "robot_rl.cli.main", "collect", f"robot={spec['robot']}",
                        f"task={spec['task']}", f"episodes={demos}", f"sim.dynamics={REAL}", f"out={store}",
                        f"run_dir={OUT / 'collect' / task}"], check=True, stdout=subprocess.DEVNULL)
    return store.resolve()


def train(task: str, method: str, seed: int, budget: int, store: Path, evals: int) -> Path:
    run_dir = OUT / "runs" / f"{task}_{method}_seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a run folder of an earlier benchmark would be resumed into
    every = max(budget // evals, 1)
    overrides = [o.replace("{real}", str(store)) for o in METHODS[method](budget)]
    cmd = [sys.executable, "-m", "robot_rl.cli.main", "train", f"task={task}", f"seed={seed}",
           "sim.dynamics=nominal", f"eval.every_env_steps={every}", f"eval.every_updates={every}",
           "eval.episodes=1", "eval.video=false", "keep_checkpoints=1000", "threads=1", f"run_dir={run_dir}",
           *SHARED, *overrides]
    with open(OUT / "runs" / f"{task}_{method}_seed{seed}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return run_dir


def evaluate_run(run_dir: Path, episodes: int) -> list[dict]:
    """Every checkpoint of a run on "real"; the last one on sim too. In a subprocess (one core each)."""
    out = run_dir / "real_eval.json"
    subprocess.run([sys.executable, __file__, "--evaluate", str(run_dir), "--episodes", str(episodes)], check=True)
    return json.loads(out.read_text())


def evaluate_checkpoints(run_dir: Path, episodes: int) -> None:
    import torch

    from robot_rl.learner.checkpoint import LATEST
    from robot_rl.learner.policy import load_policy
    from robot_rl.learner.rollout import evaluate
    from robot_rl.sim import Dynamics

    torch.set_num_threads(1)
    rows, folder = [], run_dir / "checkpoints"
    checkpoints = sorted(p for p in folder.glob("step_*") if p.is_dir())
    last = folder / (folder / LATEST).read_text().strip()
    def rollouts(checkpoint: Path, dynamics: str) -> dict:
        agent, env, _, _ = load_policy(checkpoint, dynamics=Dynamics.preset(dynamics).to_dict())
        result = evaluate(lambda obs: agent.act(obs, deterministic=True), env, episodes, EVAL_SEED)
        env.close()
        return result

    for checkpoint in checkpoints:
        state = json.loads((checkpoint / "state.json").read_text())
        result = rollouts(checkpoint, REAL)
        row = {"env_steps": state["env_steps"], "updates": state["critic_updates"],
               "real_success": result["success_rate"], "real_return": result["return"]}
        if checkpoint == last:
            sim = rollouts(checkpoint, "nominal")
            row.update(sim_success=sim["success_rate"], sim_return=sim["return"])
        rows.append(row)
    (run_dir / "real_eval.json").write_text(json.dumps(rows))


def dataset_return(store: Path) -> float:
    from robot_rl.datasets import TrajectoryReader

    reader = TrajectoryReader(store)
    per_episode = np.split(reader.column("reward"), reader.episode_ends[:-1])
    return float(np.mean([r.sum() for r in per_episode]))


def curve_rows(task: str, method: str, seed: int, evals: list[dict], budget: int) -> list[dict]:
    """Rows against online env steps. Cal-QL has none: its checkpoints are placed by updates."""
    rows = []
    for e in evals:
        step = e["updates"] if method == "calql_real" else e["env_steps"]
        rows.append({"task": task, "algo": method, "seed": seed, "env_steps": step, "updates": e["updates"],
                     "real_success": e["real_success"], "real_return": e["real_return"],
                     "sim_success": e.get("sim_success", ""), "sim_return": e.get("sim_return", "")})
    return rows


FIELDS = ["task", "algo", "seed", "env_steps", "updates", "real_success", "real_return", "sim_success", "sim_return"]


def final_rows(rows: list[dict]) -> dict:
    """(task, algo) -> the last evaluation of each seed."""
    last: dict = {}
    for r in rows:
        key = (r["task"], r["algo"], r["seed"])
        if key not in last or int(r["env_steps"]) >= int(last[key]["env_steps"]):
            last[key] = r
    grouped: dict = {}
    for (task, algo, _), r in last.items():
        grouped.setdefault((task, algo), []).append(r)
    return grouped


def report(rows: list[dict], references: dict, title: str) -> None:
    table = Table(title=title)
    for col in ("task", "method", "seeds", "real return (end)", "real success (end)", "sim return (end)",
                "real - sim return", "real return - h2o's"):
        table.add_column(col, justify="right")
    grouped = final_rows(rows)
    for task in dict.fromkeys(r["task"] for r in rows):
        h2o = grouped.get((task, "h2o"))
        h2o_return = np.mean([float(r["real_return"]) for r in h2o]) if h2o else float("nan")
        for algo in METHODS:
            finals = grouped.get((task, algo))
            if not finals:
                continue
            real = [float(r["real_return"]) for r in finals]
            sim = [float(r["sim_return"]) for r in finals if r["sim_return"] != ""]
            success = np.mean([float(r["real_success"]) for r in finals])
            table.add_row(task, algo, str(len(finals)), f"{np.mean(real):.1f} ± {np.std(real):.1f}", f"{success:.0%}",
                          f"{np.mean(sim):.1f}" if sim else "-", f"{np.mean(real) - np.mean(sim):+.1f}" if sim else "-",
                          f"{np.mean(real) - h2o_return:+.1f}")
        if task in references:
            table.add_row(task, "real dataset (expert)", "-", f"{references[task]:.1f}", "-", "-", "-", "-")
    console.print(table)


def plot(rows: list[dict], path: Path) -> None:
    """Return and success on real against online steps per task: mean over seeds, band min..max."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(2, len(tasks), figsize=(6 * len(tasks), 8), squeeze=False)
    for col, task in enumerate(tasks):
        for row, (metric, label) in enumerate((("real_return", "return on real"),
                                               ("real_success", "success rate on real"))):
            ax = axes[row, col]
            for algo in METHODS:
                mine = [r for r in rows if r["task"] == task and r["algo"] == algo]
                if not mine:
                    continue
                steps = sorted({int(r["env_steps"]) for r in mine})
                values = [[float(r[metric]) for r in mine if int(r["env_steps"]) == s] for s in steps]
                style = "--" if algo == "calql_real" else "-"
                ax.plot(steps, [np.mean(v) for v in values], style, marker="o", label=algo)
                ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values], alpha=0.2)
            ax.set(xlabel="online env steps (Cal-QL: updates)", ylabel=label, title=f"{task}: sim nominal, real {REAL}")
            ax.grid(alpha=0.3)
        axes[1, col].set_ylim(-0.02, 1.02)
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_csv(rows: list[dict], references: dict) -> None:
    with open(OUT / "sim2real.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (OUT / "references.json").write_text(json.dumps(references))


def read_csv() -> tuple[list[dict], dict]:
    with open(OUT / "sim2real.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    refs = OUT / "references.json"
    return rows, (json.loads(refs.read_text()) if refs.exists() else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every budget (e.g. 0.5)")
    parser.add_argument("--replot", action="store_true", help="redraw the PNG and table from sim2real.csv")
    parser.add_argument("--evaluate", type=Path, help=argparse.SUPPRESS)  # internal: one run's checkpoints
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    if args.evaluate:
        evaluate_checkpoints(args.evaluate, args.episodes)
        return
    if args.replot:
        rows, references = read_csv()
        plot(rows, OUT / "sim2real.png")
        report(rows, references, str(OUT / "sim2real.csv"))
        return
    seeds, evals, episodes = (1, 2, 3) if args.quick else (3, 4, 10)
    seeds = args.seeds or seeds
    scale = 0.2 if args.quick else args.scale
    (OUT / "runs").mkdir(parents=True, exist_ok=True)
    budgets = {t: max(int(TASKS[t]["budget"] * scale), 100) for t in args.tasks}
    demos = {t: 5 if args.quick else TASKS[t]["demos"] for t in args.tasks}
    stores = {t: collect(t, TASKS[t], demos[t]) for t in args.tasks}
    references = {t: dataset_return(stores[t]) for t in args.tasks}
    jobs = [(t, m, s) for s in range(seeds) for t in args.tasks for m in METHODS]  # seed-major: early rows cover both

    def job(spec):
        task, method, seed = spec
        run_dir = train(task, method, seed, budgets[task], stores[task], evals)
        return curve_rows(task, method, seed, evaluate_run(run_dir, episodes), budgets[task])

    with ThreadPoolExecutor(max_workers=2) as pool:
        rows = [row for rows in pool.map(job, jobs) for row in rows]
    write_csv(rows, references)
    plot(rows, OUT / "sim2real.png")
    report(rows, references, f"sim {'nominal'} -> real {REAL}; budgets {budgets}; real episodes {demos}; "
                             f"{seeds} seed(s); {episodes} evaluation episodes on real per point")
    console.print(f"wrote {OUT / 'sim2real.csv'} and {OUT / 'sim2real.png'}")


if __name__ == "__main__":
    main()
