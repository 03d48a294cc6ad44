"""The fine-tuning job's two process layouts, side by side at the demo's settings (robot_rl/cli/demo.py):

    peer            `robot-rl train`: the twin steps in the learner's process, one env step then one update
    finetune        `robot-rl finetune realtime=false`: the learner and the fast twin actor as two
                    processes linked only by the run folder (what `make demo` runs)

Both pretrain with Cal-QL on the same scripted reach demonstrations (the demo's 5), then fine-tune with WSRL online on
the perturbed twin for the same number of steps at UTD 1, and are evaluated on the same 20 episodes.
Each run is a subprocess with one torch thread, run one after the other; the wall time includes start-up
and evaluations, the same in both.

    python benchmarks/finetune_bench.py              # the demo's budget (about 10 min on 2 cores)
    python benchmarks/finetune_bench.py --quick      # 2000 online steps: checks the pipeline

The ROS actor (`realtime=true`) is not a row: it acts at the robot's control rate (5 Hz) by design, so its
step rate is the control rate and the learner waits for it (tests/test_finetune.py runs it).
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

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from robot_rl.cli.demo import COLLECT, FINETUNE  # noqa: E402  the demo's recipe, unchanged

OUT = Path("runs/bench/finetune")
ROBOT_RL = str(Path(sys.executable).with_name("robot-rl"))
console = Console(width=150)


def recipe(keys_to_drop: tuple[str, ...], online_steps: int, store: Path, run_dir: Path) -> list[str]:
    """The demo's finetune overrides with this run's store, folder and budget."""
    keep = [o for o in FINETUNE if o.split("=", 1)[0] not in (*keys_to_drop, "run_dir", "dataset",
                                                             "algo.schedule.online_steps")]
    return [*keep, f"dataset={store}", f"run_dir={run_dir}", f"algo.schedule.online_steps={online_steps}"]


def timed(command: list[str], log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed (status {done.returncode}); see {log}")
    return time.perf_counter() - started


def final(run_dir: Path) -> dict:
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    state = json.loads((run_dir / "checkpoints" / latest / "state.json").read_text())
    rows = (run_dir / "evaluations.csv").read_text().strip().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    evaluation = dict(zip(header, last))
    return {"updates": state["critic_updates"], "env_steps": state["env_steps"],
            "success": float(evaluation["success_rate"]), "return": float(evaluation["return"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2000 online steps")
    args = parser.parse_args()
    online_steps = 2000 if args.quick else int(next(o for o in FINETUNE if "online_steps" in o).split("=")[1])
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    store = OUT / "reach.zarr"
    collect = [o for o in COLLECT if not o.startswith(("out=", "run_dir="))]
    timed([ROBOT_RL, "collect", *collect, f"out={store}", f"run_dir={OUT / 'collect'}"], OUT / "collect.log")

    rows = {}
    runs = {"peer: robot-rl train (one process)": ("train", ("backend", "realtime")),
            "robot-rl finetune realtime=false (learner + actor)": ("finetune", ())}
    for name, (verb, drop) in runs.items():
        run_dir = OUT / verb
        console.print(f"running {name} ...")
        seconds = timed([ROBOT_RL, verb, *recipe(drop, online_steps, store, run_dir)], OUT / f"{verb}.log")
        rows[name] = {"seconds": seconds, **final(run_dir)}

    peer = next(iter(rows.values()))
    table = Table(title=f"WSRL on widowx/reach, perturbed twin: 3000 Cal-QL updates, {online_steps} online steps "
                        f"at UTD 1, 20 evaluation episodes ({os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f})")
    for column in ("layout", "wall (s)", "critic updates/s", "env steps / wall s", "final success", "final return",
                   "wall / peer"):
        table.add_column(column, justify="left" if column == "layout" else "right")
    for name, r in rows.items():
        table.add_row(name, f"{r['seconds']:.0f}", f"{r['updates'] / r['seconds']:.1f}",
                      f"{r['env_steps'] / r['seconds']:.1f}", f"{r['success']:.0%}", f"{r['return']:.2f}",
                      f"{r['seconds'] / peer['seconds']:.2f}x")
    console.print(table)
    console.print(f"logs and runs: {OUT}/")


if __name__ == "__main__":
    main()
