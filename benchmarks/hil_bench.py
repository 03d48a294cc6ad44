"""Human in the loop on the twin's pick-and-place: success against online steps with and without the scripted
operator taking over (the same online budget, the same seed and demonstrations), the human steps it used,
and the learned reward's precision and recall against the twin's true success. Behaviour cloning on the same
demonstrations, with as many gradient updates as the longest arm's critic updates (BC profile and overrides from
learning_curves.py), evaluated on the same episodes, is the row every arm is read against.

    python benchmarks/hil_bench.py                   # RLPD, 6000 online steps (about 4 min on 2 shared cores)
    python benchmarks/hil_bench.py --algos rlpd,wsrl --online 20000 --seeds 0,1,2   # a run that can tell

The operator is robot_rl.learner.scripted_operator.ScriptedOperator (the task's expert; it takes over after
``patience`` ticks without progress in the task's dense reward and hands back once the expert has made
progress), inside `robot-rl train takeover=true`: the twin stepped as fast as the CPU allows in the learner's
process, the same operator logic the ROS graph's takeover teleop runs at 5 Hz (tests/test_hil_graph.py).
Its steps are marked per step in the online store and sampled on the demonstration side (RLPD: the
offline half, over demos and human steps alike; WSRL online: hil_ratio = 0.5 of each batch).
``--budget`` caps the operator's ticks (default 20% of the online steps).

Reward classifier: `robot-rl collect` with the front camera (64 x 64), sparse rewards (1 exactly when the
twin says the cube is in the bowl), half the episodes at expert noise 0.05 (mostly successes), half at 0.6
(mostly failures), then `robot-rl
train-reward`: precision and recall on held-out episodes, frame by frame, against that true success.

Budgets: the default is sized to finish well within 10 minutes on 2 shared cores and is far too small for
pick-and-place to learn online (learning_curves.py needs tens of thousands of steps): it checks the
pipeline and shows the human-step accounting; whether interventions help at this budget is printed, not
assumed. The default run takes 4-7 minutes here (6000 steps: 84-180 s per arm, BC about 60 s). One seed at 20k online
steps per arm (`--online 20000`, 6 min per arm) still showed no difference in final evaluation success
(0% for both); a run that can tell needs more steps and at least 3 seeds (hours on 2 cores, or a GPU with
learning_curves.py's paper profile).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.learning_curves import PROFILES as CURVE_PROFILES  # noqa: E402
from benchmarks.learning_curves import algorithms  # noqa: E402
from robot_rl.datasets import TrajectoryReader  # noqa: E402
from robot_rl.learner.metrics import read_evaluations  # noqa: E402

console = Console(width=150)
OUT = Path("runs/bench/hil")
# learning_curves.py's CPU profile (128-unit layers, batch 128, 3-step returns at discount 0.9, E = 5).
SHARED = ["algo.agent.hidden=[128,128]", "algo.batch_size=128", "algo.discount=0.9", "algo.n_step=3",
          "algo.agent.ensemble_size=5", "algo.agent.target_subset=2", "algo.agent.layer_norm=true"]
PROFILE = {"rlpd": SHARED + ["algo.agent.init_temperature=0.05", "algo.agent.actor_lr=1e-3", "algo.agent.critic_lr=1e-3",
                             "algo.schedule.utd=2"],
           "wsrl": SHARED + ["algo.agent.n_actions=5", "algo.agent.target_entropy_scale=0",
                             "algo.agent.init_temperature=0.05", "algo.agent.actor_lr=1e-3", "algo.agent.critic_lr=1e-3",
                             "algo.schedule.utd=2"]}


def robot_rl(*args: str, log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "-m", "robot_rl.cli.main", *args], stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    if done.returncode != 0:
        raise SystemExit(f"robot-rl {args[0]} failed (status {done.returncode}); see {log}")
    return time.perf_counter() - started


def schedule(algo: str, online: int, offline: int) -> list[str]:
    if algo == "rlpd":
        return [f"algo.schedule.online_steps={online}"]
    warmup = min(400, online // 5)
    return [f"algo.schedule.offline_updates={offline}", f"algo.schedule.warmup_steps={warmup}",
            f"algo.schedule.online_steps={online}"]


def common(seed: int, args, run_dir: Path) -> list[str]:
    """The overrides every arm and BC share: task, seed, evaluation episodes and seeds."""
    return ["task=widowx_pick_place", f"seed={seed}", "threads=1", f"eval.every_env_steps={-(-args.online // 3)}",
            "eval.every_updates=0", f"eval.episodes={args.eval_episodes}", "eval.video=false", f"run_dir={run_dir}"]


def fine_tune(algo: str, seed: int, hil: bool, args, demos: Path) -> dict:
    name = f"{algo}_{'hil' if hil else 'plain'}_seed{seed}"
    run_dir = OUT / name
    budget = args.budget if args.budget is not None else args.online // 5
    overrides = [f"algo={algo}", f"dataset={demos}", *common(seed, args, run_dir),
                 *PROFILE[algo], *schedule(algo, args.online, args.offline),
                 *(["takeover=true", f"takeover_budget={budget}"] if hil else [])]
    seconds = robot_rl("train", *overrides, log=OUT / f"{name}.log")
    evals = [e for e in read_evaluations(run_dir) if e["phase"] not in ("start",)]
    reader = TrajectoryReader(run_dir / "online.zarr")
    human = int(np.sum(reader.column("intervention"))) if hil else 0
    infos = [reader.episode_info(i) for i in range(reader.num_episodes)]
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    state = json.loads((run_dir / "checkpoints" / latest / "state.json").read_text())
    drawn = sum(p.get("human_rows", 0) for p in state.get("phase_log", []))
    return {"algo": algo, "seed": seed, "hil": hil, "seconds": seconds, "evals": evals, "human_steps": human,
            "takeovers": sum(i.get("interventions", 0) for i in infos), "episodes": reader.num_episodes,
            "online_steps": reader.num_steps, "human_rows_drawn": drawn, "updates": state["critic_updates"],
            "train_success": float(np.mean([bool(i.get("success")) for i in infos])) if infos else 0.0}


def behaviour_cloning(seed: int, updates: int, args, demos: Path) -> dict:
    """BC on the arms' demonstrations for ``updates`` gradient steps (learning_curves.py's BC overrides)."""
    run_dir = OUT / f"bc_seed{seed}"
    overrides = [*algorithms(demos, args.online, updates, 0)["bc"], *CURVE_PROFILES["cpu"]["bc"],
                 *common(seed, args, run_dir)]
    seconds = robot_rl("train", *overrides, log=OUT / f"bc_seed{seed}.log")
    evals = [e for e in read_evaluations(run_dir) if e["phase"] not in ("start",)]
    return {"algo": "bc", "seed": seed, "seconds": seconds, "evals": evals, "updates": updates}


def success_table(results: list[dict], bc: list[dict], online: int) -> Table:
    steps = sorted({int(e["env_steps"]) for r in results for e in r["evals"]})
    table = Table(title=f"pick-and-place on the twin: evaluation success against online steps ({online} online steps per "
                        f"run; BC: {bc[0]['updates']} gradient updates, as many as the arms' most critic updates; "
                        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    for column in ("algo", "seed", "operator", *[f"success @{s}" for s in steps], "final success",
                   "human steps (of online)", "takeovers", "human rows drawn", "rollout success", "wall s"):
        table.add_column(column, justify="right")
    for r in results:
        by_step = {int(e["env_steps"]): e["success_rate"] for e in r["evals"]}
        table.add_row(r["algo"], str(r["seed"]), "scripted takeover" if r["hil"] else "none",
                      *[f"{by_step[s]:.0%}" if s in by_step else "-" for s in steps], final(r),
                      f"{r['human_steps']} ({r['human_steps'] / max(r['online_steps'], 1):.0%})", str(r["takeovers"]),
                      str(r["human_rows_drawn"]), f"{r['train_success']:.0%}", f"{r['seconds']:.0f}")
    for r in bc:
        table.add_row("bc", str(r["seed"]), "none", *["-"] * len(steps), final(r), "-", "-", "-", "-",
                      f"{r['seconds']:.0f}")
    return table


def final(run: dict) -> str:
    return f"{run['evals'][-1]['success_rate']:.0%}" if run["evals"] else "-"


def bc_lines(results: list[dict], bc: list[dict]) -> list[str]:
    """Each arm's final success (mean over seeds) against BC's on the same demonstrations."""
    baseline = float(np.mean([r["evals"][-1]["success_rate"] for r in bc if r["evals"]]))
    arms = []
    for algo in sorted({r["algo"] for r in results}):
        for hil in (False, True):
            finals = [r["evals"][-1]["success_rate"] for r in results if r["algo"] == algo and r["hil"] == hil
                      and r["evals"]]
            if finals:
                arm = float(np.mean(finals))
                arms.append(f"{algo} {'with' if hil else 'without'} the operator {arm:.0%} ({arm - baseline:+.0%})")
    return [f"against BC ({baseline:.0%} final success, {bc[0]['updates']} updates on the same demonstrations, "
            f"mean over {len(bc)} seed(s)): " + "; ".join(arms)]


def difference_lines(results: list[dict]) -> list[str]:
    lines = []
    for algo in sorted({r["algo"] for r in results}):
        final = {hil: [r["evals"][-1]["success_rate"] for r in results if r["algo"] == algo and r["hil"] == hil
                       and r["evals"]] for hil in (False, True)}
        if final[False] and final[True]:
            plain, hil = float(np.mean(final[False])), float(np.mean(final[True]))
            verdict = ("interventions helped" if hil > plain else "interventions did not help" if hil < plain
                       else "no difference")
            lines.append(f"{algo}: final evaluation success {plain:.0%} without, {hil:.0%} with the operator "
                         f"(mean over {len(final[True])} seed(s)): {verdict} at this budget")
    return lines


def classifier(args) -> dict:
    store = OUT / "frames.zarr"
    for part, noise in enumerate((0.05, 0.6)):  # mostly successes, then mostly failures, in one store
        robot_rl("collect", "robot=widowx", "task=pick_place", f"episodes={args.frame_episodes // 2}", f"noise={noise}",
                 "reward_type=sparse", "cameras=[front]", "image_size=[64,64]", f"out={store}", f"seed={1000 * part}",
                 f"run_dir={OUT / f'collect_frames_{part}'}", log=OUT / f"collect_frames_{part}.log")
    seconds = robot_rl("train-reward", f"store={store}", "camera=front", f"epochs={args.epochs}",
                       f"run_dir={OUT / 'reward'}", log=OUT / "train_reward.log")
    meta = json.loads((OUT / "reward" / "reward_classifier.json").read_text())
    reader = TrajectoryReader(store)
    return {**meta, "seconds": seconds, "successful_episodes": sum(bool(reader.episode_info(i)["success"])
                                                                  for i in range(reader.num_episodes))}


def classifier_table(report: dict) -> Table:
    table = Table(title=f"reward classifier (front camera 64x64) against the twin's true success, {report['seconds']:.0f} s "
                        f"to train; {report['successful_episodes']} successful episodes of "
                        f"{len(report['episodes']['train']) + len(report['episodes']['held_out'])}")
    for column in ("split", "episodes", "frames", "success frames", "precision", "recall", "accuracy"):
        table.add_column(column, justify="right")
    for split in ("train", "held_out"):
        m = report[split]
        table.add_row(split.replace("_", "-"), str(len(report["episodes"][split])), str(m["frames"]), str(m["positives"]),
                      f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['accuracy']:.3f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default="rlpd", help="comma-separated: rlpd, wsrl")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--online", type=int, default=6000, help="online steps per run")
    parser.add_argument("--offline", type=int, default=1000, help="wsrl: Cal-QL pretraining updates")
    parser.add_argument("--budget", type=int, default=None, help="the operator's most ticks (default online / 5)")
    parser.add_argument("--demos", type=int, default=10, help="scripted pick-and-place demonstrations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--frame-episodes", type=int, default=40,
                        help="episodes of camera frames for the classifier (half at expert noise 0.05, half at 0.6)")
    parser.add_argument("--epochs", type=int, default=20, help="classifier training epochs")
    args = parser.parse_args()
    algos = [a for a in args.algos.split(",") if a]
    unknown = [a for a in algos if a not in PROFILE]
    if unknown:
        parser.error(f"--algos: {unknown} unknown; expected some of {sorted(PROFILE)}")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    started = time.perf_counter()
    demos = OUT / "demos.zarr"
    robot_rl("collect", "robot=widowx", "task=pick_place", f"episodes={args.demos}", "noise=0.1", f"out={demos}",
             f"run_dir={OUT / 'collect'}", log=OUT / "collect.log")
    results = []
    for algo in algos:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for hil in (False, True):
                console.print(f"{algo} seed {seed} {'with' if hil else 'without'} the operator ...")
                results.append(fine_tune(algo, seed, hil, args, demos))
    updates = max(r["updates"] for r in results)
    bc = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        console.print(f"bc seed {seed}, {updates} updates ...")
        bc.append(behaviour_cloning(seed, updates, args, demos))
    console.print(success_table(results, bc, args.online))
    for line in [*difference_lines(results), *bc_lines(results, bc)]:
        console.print(line)
    console.print("building the classifier's frames and training it ...")
    console.print(classifier_table(classifier(args)))
    console.print(f"total {time.perf_counter() - started:.0f} s; logs and runs: {OUT}/")


if __name__ == "__main__":
    main()
