"""CO-RFT against imitation only on the WidowX pick-and-place twin, with the paper's three metrics:
success rate, cycle time (steps to success) and success at held-out initial cube positions.

    python benchmarks/corft.py              # the CPU size: 2 seeds, about 12 minutes per seed on 2 shared cores
    python benchmarks/corft.py --quick      # a few minutes: checks the pipeline, not the ranking
    python benchmarks/corft.py --sweep-h    # imitation only for h in 1, 2, 4, 8 (how the default h was chosen)
    python benchmarks/corft.py --replot     # table and PNG again from the CSV

Demonstrations: the scripted expert (noise 0.05) with the cube drawn only from y in [-0.20, 0.05] m
(``cube_range``), 64x64 front camera. Evaluation: in that range ("in range") and at held-out cube
positions y in [0.10, 0.20] m that no demonstration saw; episodes end at success, so cycle time is the
episode length of the successful ones. Policies read the front camera, proprioception (``state``),
the instruction and the twin's privileged ``task_state`` (cube and bowl positions; a real-robot run
drops it). Every policy is a `robot-rl train algo=corft` subprocess with threads=1, two at a time:

* ``imitation``     stage 1 only, for the whole budget (imitation_updates = N1 + N2)
* ``corft``         stage 1 for N1 updates, then chunked offline RL for N2 (same total updates, seeds, data)
* ``corft_stage1``  the same run's checkpoint after stage 1 (N1 imitation updates), for reference

CPU size of the built-in model: width 64, 2 layers, 4 heads, 4x4 patch tokens, batch 64; critic 2 x
LayerNorm 128-128 with 4 sampled chunks per kind in the Cal-QL term (the yaml defaults are for a GPU).
The policy's inference time is measured in the evaluation (one CPU thread) against the 200 ms of a
5 Hz control tick. Writes runs/bench/corft/corft.csv, corft.png (and sweep_h.csv with --sweep-h).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console(width=140)
OUT = Path("runs/bench/corft")
DEMO_RANGE = ((0.20, -0.20), (0.38, 0.05))       # cube (x, y) box of the demonstrations, metres
HELD_OUT_RANGE = ((0.20, 0.10), (0.38, 0.20))    # outside it: 5 cm beyond the demos' largest y
EVAL_SEED = 200_000
CONTROL_PERIOD_MS = 200.0                        # 5 Hz
IMAGE = [64, 64]
CPU_SIZE = ["algo.agent.hidden=[128,128]", "algo.agent.n_actions=4", "algo.batch_size=64",
            "obs_keys=[state,task_state]", "cameras=[front]", f"image_size=[{IMAGE[0]},{IMAGE[1]}]"]
FIELDS = ["method", "seed", "chunk", "condition", "success_rate", "cycle_time", "return", "episodes", "updates",
          "train_s", "infer_ms_p50", "infer_ms_max"]


def collect(dataset: Path, episodes: int) -> None:
    from robot_rl.datasets import StoreWriter, TrajectoryReader
    from robot_rl.sim import make_env, make_expert
    from robot_rl.sim.recording import record_episode

    if dataset.exists() and TrajectoryReader(dataset).num_episodes >= episodes:
        return
    env = make_env("widowx", "pick_place", cameras=("front",), image_size=tuple(IMAGE), terminate_on_success=False,
                   cube_range=DEMO_RANGE)
    successes = 0
    with StoreWriter.create(dataset, env.embodiment, overwrite=True) as writer:
        for i in range(episodes):
            expert = make_expert(env, noise=0.05, seed=i)
            successes += record_episode(env, expert, writer, seed=i, source="scripted", on_reset=expert.reset).success
    env.close()
    console.print(f"collected {episodes} demonstrations into {dataset} ({successes} successful)")


def train(run_dir: Path, overrides: list[str]) -> float:
    """A `robot-rl train algo=corft` subprocess; returns its wall time."""
    cmd = [sys.executable, "-m", "robot_rl.cli.main", "train", "algo=corft", "task=widowx_pick_place", "threads=1",
           "eval.episodes=1", "eval.video=false", "eval.every_updates=0", "keep_checkpoints=5",
           f"run_dir={run_dir}", *CPU_SIZE, *overrides]
    started = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return time.perf_counter() - started


def load_agent(checkpoint: Path):
    from omegaconf import OmegaConf

    from robot_rl.learner.checkpoint import load_weights
    from robot_rl.learner.trainer import build_agent, make_twin

    cfg = OmegaConf.load(checkpoint / "config.yaml")
    env = make_twin(cfg)
    agent = build_agent(cfg, env.embodiment)
    env.close()
    load_weights(agent, checkpoint)
    return agent.eval(), cfg


def evaluate(agent, cube_range, episodes: int) -> dict:
    """Success rate, mean steps to success, mean dense return, and the policy's inference time per query."""
    from robot_rl.learner.chunking import ChunkExecutor
    from robot_rl.sim import make_env

    env = make_env("widowx", "pick_place", cameras=("front",), image_size=tuple(IMAGE), terminate_on_success=True,
                   cube_range=cube_range)
    keys = agent.encoder_keys
    successes, cycle, latency, returns = [], [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        chunks, done, success, steps, total = ChunkExecutor(), False, False, 0, 0.0
        while not done:
            if chunks.needs_query():
                started = time.perf_counter()
                chunks.push(agent.act({k: obs[k][None] for k in keys}, deterministic=True)[0])
                latency.append(1e3 * (time.perf_counter() - started))
            obs, reward, terminated, truncated, info = env.step(chunks.next_action())
            steps, total = steps + 1, total + reward
            success |= bool(info.get("success", False))
            done = terminated or truncated
        successes.append(success)
        returns.append(total)
        if success:
            cycle.append(steps)
    env.close()
    return {"success_rate": float(np.mean(successes)), "cycle_time": float(np.mean(cycle)) if cycle else float("nan"),
            "return": float(np.mean(returns)), "episodes": episodes, "infer_ms_p50": float(np.median(latency)), "infer_ms_max": float(np.max(latency))}


def checkpoint_after(run_dir: Path, updates: int) -> Path:
    return run_dir / "checkpoints" / f"step_{updates:010d}_{0:09d}"


def run_seed(seed: int, dataset: Path, demos: int, n1: int, n2: int, chunk: int, episodes: int,
             rl_weight: float | None = None) -> list[dict]:
    common = [f"dataset={dataset}", f"demos={demos}", f"seed={seed}", f"algo.agent.chunk={chunk}",
              *([f"algo.agent.rl_weight={rl_weight}"] if rl_weight is not None else [])]
    runs = {"imitation": (OUT / "runs" / f"imitation_s{seed}",
                          [f"algo.schedule.imitation_updates={n1 + n2}", "algo.schedule.rl_updates=0"]),
            "corft": (OUT / "runs" / f"corft_s{seed}",
                      [f"algo.schedule.imitation_updates={n1}", f"algo.schedule.rl_updates={n2}"])}
    with ThreadPoolExecutor(2) as pool:
        seconds = dict(zip(runs, pool.map(lambda r: train(r[0], common + r[1]), runs.values())))
    policies = {"imitation": (checkpoint_after(runs["imitation"][0], n1 + n2), n1 + n2, seconds["imitation"]),
                "corft": (checkpoint_after(runs["corft"][0], n1 + n2), n1 + n2, seconds["corft"]),
                "corft_stage1": (checkpoint_after(runs["corft"][0], n1), n1, float("nan"))}
    rows = []
    for method, (checkpoint, updates, train_s) in policies.items():
        agent, _ = load_agent(checkpoint)
        for condition, box in (("in_range", DEMO_RANGE), ("held_out", HELD_OUT_RANGE)):
            result = evaluate(agent, box, episodes)
            rows.append({"method": method, "seed": seed, "chunk": chunk, "condition": condition, "updates": updates,
                         "train_s": round(train_s, 1), **result})
            console.print(f"seed {seed} {method:13s} {condition:9s} success {result['success_rate']:.0%} "
                          f"cycle {result['cycle_time']:.1f} steps, inference p50 {result['infer_ms_p50']:.1f} ms")
    return rows


def sweep_h(dataset: Path, demos: int, updates: int, episodes: int, chunks: list[int]) -> list[dict]:
    """Imitation only for each h (one seed): in-range success and cycle time."""
    def one(h: int) -> tuple[int, float]:
        return h, train(OUT / "runs" / f"sweep_h{h}", [f"dataset={dataset}", f"demos={demos}", "seed=0",
                                                      f"algo.agent.chunk={h}", f"algo.schedule.imitation_updates={updates}",
                                                      "algo.schedule.rl_updates=0"])
    with ThreadPoolExecutor(2) as pool:
        seconds = dict(pool.map(one, chunks))
    rows = []
    for h in chunks:
        agent, _ = load_agent(checkpoint_after(OUT / "runs" / f"sweep_h{h}", updates))
        result = evaluate(agent, DEMO_RANGE, episodes)
        rows.append({"method": "imitation", "seed": 0, "chunk": h, "condition": "in_range", "updates": updates,
                     "train_s": round(seconds[h], 1), **result})
        console.print(f"h={h}: success {result['success_rate']:.0%}, cycle {result['cycle_time']:.1f} steps, "
                      f"return {result['return']:.2f}")
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: (v if k in ("method", "condition") else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per method: mean over seeds of in-range success, cycle time, held-out success, inference p50."""
    def mean(method, condition, key):
        values = [r.get(key, float("nan")) for r in rows if r["method"] == method and r["condition"] == condition]
        values = [v for v in values if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    return {method: {"success": mean(method, "in_range", "success_rate"), "cycle": mean(method, "in_range", "cycle_time"),
                     "return": mean(method, "in_range", "return"), "held_out_return": mean(method, "held_out", "return"),
                     "held_out": mean(method, "held_out", "success_rate"), "infer": mean(method, "in_range", "infer_ms_p50"),
                     "seeds": len({r["seed"] for r in rows if r["method"] == method})}
            for method in dict.fromkeys(r["method"] for r in rows)}


def report(rows: list[dict], title: str) -> None:
    summary = summarize(rows)
    table = Table(title=title)
    for col in ("method", "seeds", "success (in range)", "cycle time (steps)", "success (held-out)",
                "return in range / held-out", "inference p50 (ms)"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for method, s in summary.items():
        table.add_row(method, str(s["seeds"]), f"{s['success']:.0%}", f"{s['cycle']:.1f}", f"{s['held_out']:.0%}",
                      f"{s['return']:.2f} / {s['held_out_return']:.2f}", f"{s['infer']:.1f}")
    console.print(table)
    if "imitation" in summary and "corft" in summary:
        il, co = summary["imitation"], summary["corft"]
        console.print(f"CO-RFT vs imitation: success {co['success'] - il['success']:+.0%} (points), cycle time "
                      f"{(co['cycle'] / il['cycle'] - 1) if il['cycle'] else float('nan'):+.1%}, held-out success "
                      f"{co['held_out'] - il['held_out']:+.0%} (points); paper (real robots): +57% success, -22.3% "
                      f"cycle time, 44.3% held-out success. Inference p50 {co['infer']:.1f} ms vs the "
                      f"{CONTROL_PERIOD_MS:.0f} ms of a 5 Hz tick ({CONTROL_PERIOD_MS / co['infer']:.0f}x headroom)")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(rows)
    methods = list(summary)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (key, label) in zip(axes, (("success", "success rate (in range)"), ("cycle", "cycle time (steps)"),
                                       ("held_out", "success rate (held-out positions)"))):
        ax.bar(methods, [summary[m][key] for m in methods], color=["#888", "#1f77b4", "#aec7e8"][:len(methods)])
        ax.set_title(label)
        if key != "cycle":
            ax.set_ylim(0, 1)
    fig.suptitle("CO-RFT vs imitation on WidowX pick-and-place (twin)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--demos", type=int, default=50)
    parser.add_argument("--imitation-updates", type=int, default=None, help="N1 (stage 1 of CO-RFT)")
    parser.add_argument("--rl-updates", type=int, default=None, help="N2 (stage 2 of CO-RFT)")
    parser.add_argument("--chunk", type=int, default=2, help="h (the default from --sweep-h)")
    parser.add_argument("--episodes", type=int, default=None, help="evaluation episodes per condition")
    parser.add_argument("--rl-weight", type=float, default=None,
                        help="CO-RFT's alpha in lambda = alpha / mean|Q| (default: configs/algo/corft.yaml)")
    parser.add_argument("--sweep-h", action="store_true", help="imitation only for h in 1, 2, 4, 8")
    parser.add_argument("--replot", action="store_true", help="redraw the PNG and table from corft.csv")
    args = parser.parse_args()
    if not 30 <= args.demos <= 60 and not args.quick:
        parser.error(f"--demos: CO-RFT's setting is 30 to 60 demonstrations, found {args.demos}")
    import torch
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    csv_path = OUT / ("sweep_h.csv" if args.sweep_h else "corft.csv")
    if args.replot:
        rows = read_csv(csv_path)
    else:
        n1 = args.imitation_updates or (100 if args.quick else 1500)
        n2 = args.rl_updates or (100 if args.quick else 1500)
        episodes = args.episodes or (4 if args.quick else 20)
        demos = min(args.demos, 10) if args.quick else args.demos
        dataset = OUT / f"demos_{demos}.zarr"
        collect(dataset, demos)
        if args.sweep_h:
            rows = sweep_h(dataset, demos, n1 + n2, episodes, [1, 2, 4, 8])
        else:
            rows = []
            for seed in range(args.seeds or (1 if args.quick else 2)):
                rows += run_seed(seed, dataset, demos, n1, n2, args.chunk, episodes, args.rl_weight)
                write_csv(rows, csv_path)  # after every seed: a stopped run keeps what it measured (--replot)
        write_csv(rows, csv_path)
    if args.sweep_h:
        table = Table(title="imitation only, by chunk length h (in range)")
        for col in ("h", "success", "cycle time (steps)", "return (dense)", "train s"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(str(int(r["chunk"])), f"{r['success_rate']:.0%}", f"{r['cycle_time']:.1f}", f"{r['return']:.2f}",
                          f"{r['train_s']:.0f}")
        console.print(table)
        return
    report(rows, f"CO-RFT vs imitation, WidowX pick-and-place twin ({csv_path})")
    plot(rows, OUT / "corft.png")
    console.print(f"wrote {csv_path} and {OUT / 'corft.png'}")


if __name__ == "__main__":
    main()
