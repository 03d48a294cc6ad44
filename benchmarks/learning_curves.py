"""Success rate against online steps on a WidowX twin task: behaviour cloning and offline Cal-QL (the
same demonstrations, the same number of updates), SAC from scratch, RLPD, IBRL, residual RL on BC and
WSRL, with the same budgets and seeds, from one scripted-demo dataset, and Stable-Baselines3's SAC from
scratch as the peer (``sb3_sac``: benchmarks/sb3_peer.py, same env and evaluation episodes). BC is the
baseline printed beside every result. Not run by default: Cal-QL's own fine-tuning (``calql``: the
offline phase, then online with the penalty on half offline, half online batches), and the offline peers
on the same store, d3rlpy's CQL and IQL (``d3rlpy_cql``, ``d3rlpy_iql``: benchmarks/d3rlpy_peer.py, the
same offline budget, drawn flat like BC).

    python benchmarks/learning_curves.py                 # pick-and-place, the CPU profile (2 cores, about an hour)
    python benchmarks/learning_curves.py --task reach --dynamics perturbed --algos bc,calql_offline
    python benchmarks/learning_curves.py --quick         # a few minutes: checks the pipeline, not the ranking
    python benchmarks/learning_curves.py --profile paper --device cuda --jobs 8  # the papers' networks and UTD
    python benchmarks/learning_curves.py --task reach --camera front --algos bc,wsrl  # from pixels (below)
    python benchmarks/learning_curves.py --algos rlpd --online-steps 24000 --extend  # the same runs, on to 24000

Writes runs/bench/learning_curves/<task>/curves.csv (one row per evaluation) and curves.png, and prints
the final table. Every run is a `robot-rl train` subprocess with threads=1; two run at a time (``--jobs``).
benchmarks/final_eval.py measures the runs' last checkpoints again on more episodes.

The CPU profile keeps each algorithm's structure (RLPD's 50/50 batches and LayerNorm ensemble, WSRL's
Cal-QL pretraining, warmup and offline-free fine-tuning) but shrinks the arithmetic to fit two cores
(a Cal-QL update of E = 10 x 2 x 256 at batch 256 takes about 0.9 s on one core here): 128-unit layers,
batch 128, E = 5 with min over 2, RLPD at UTD 4 instead of 20, WSRL at UTD 2 instead of 4 with a
1000-step warmup instead of 5000 (the budget is 12000 online steps), 4000 offline updates. Offline
Cal-QL runs as many updates as WSRL's pretraining and is drawn flat over the online budget.

``--camera front`` is what a real robot runs: the demonstrations are recorded with that camera at 64 x 64
and every learner reads the camera plus ``state`` (the arm's proprioception) and not ``task_state`` (the
object and target positions only a simulator knows), so the target has to be seen. The CPU profile's conv
encoder strides (2, 2, 2, 1) instead of DrQ's (2, 1, 1, 1), about a quarter of the arithmetic. SB3's peer
reads state only and is refused there.
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
# phases: 5 sampled actions of each kind instead of 10, target entropy 0 (-|A| collapses the policy's
# gripper onto one tanh edge within a few hundred updates, where its gradient vanishes), and the demo's
# initial temperature 0.05 and learning rates 1e-3 (CQL's 1e-4 actor rate needs far more updates).
SHARED = ["algo.agent.hidden=[128,128]", "algo.batch_size=128", "algo.discount=0.9", "algo.n_step=3"]
BC = ["algo.agent.hidden=[128,128]", "algo.batch_size=128"]
ENSEMBLE = ["algo.agent.ensemble_size=5", "algo.agent.target_subset=2", "algo.agent.layer_norm=true"]
ONLINE = ["algo.agent.init_temperature=0.05", "algo.agent.actor_lr=1e-3", "algo.agent.critic_lr=1e-3"]
CALQL = ["algo.agent.n_actions=5", "algo.agent.target_entropy_scale=0", "algo.agent.init_temperature=0.05",
         "algo.agent.actor_lr=1e-3", "algo.agent.critic_lr=1e-3"]
PROFILES = {
    "cpu": {"bc": BC, "sac": SHARED + ONLINE, "calql_offline": SHARED + ENSEMBLE + CALQL,
            "rlpd": SHARED + ENSEMBLE + ONLINE + ["algo.schedule.utd=4"],
            "ibrl": SHARED + ENSEMBLE + ONLINE + ["algo.schedule.utd=4"],
            "residual": SHARED + ENSEMBLE + ONLINE + ["algo.schedule.utd=4"],
            "ibrl_calql": SHARED + ENSEMBLE + CALQL + ["algo.schedule.utd=4"],
            "calql": SHARED + ENSEMBLE + CALQL + ["algo.schedule.utd=2"],
            "wsrl": SHARED + ENSEMBLE + CALQL + ["algo.schedule.utd=2"]},
    "paper": {name: [] for name in ("bc", "sac", "calql_offline", "calql", "rlpd", "ibrl", "residual", "ibrl_calql",
                                    "wsrl")},
}


def algorithms(dataset: Path, online: int, offline: int, warmup: int) -> dict[str, list[str]]:
    return {
        "bc": ["algo=bc", f"dataset={dataset}", f"algo.schedule.offline_updates={offline}"],
        "sac": ["algo=sac", f"algo.schedule.random_steps={min(1000, online // 5)}", f"algo.schedule.online_steps={online}"],
        "calql_offline": ["algo=calql", f"dataset={dataset}", f"algo.schedule.offline_updates={offline}"],
        "calql": ["algo=calql", f"dataset={dataset}", f"algo.schedule.offline_updates={offline}",
                  f"algo.schedule.online_steps={online}"],
        "rlpd": ["algo=rlpd", f"dataset={dataset}", f"algo.schedule.online_steps={online}"],
        **{name: [f"algo={name}", f"dataset={dataset}", f"algo.schedule.pretrain_updates={offline}",
                  f"algo.schedule.online_steps={online}"] for name in ("ibrl", "residual")},
        "ibrl_calql": ["algo=ibrl", "algo.agent.proposer=calql", f"dataset={dataset}",
                       f"algo.schedule.pretrain_updates={offline}", f"algo.schedule.online_steps={online}"],
        "wsrl": ["algo=wsrl", f"dataset={dataset}", f"algo.schedule.offline_updates={offline}",
                 f"algo.schedule.warmup_steps={warmup}", f"algo.schedule.online_steps={online}"],
        SB3: ["--online-steps", str(online), "--random-steps", str(min(1000, online // 5))],
        **{name: ["--dataset", str(dataset), "--updates", str(offline)] for name in D3RLPY},
    }


SB3 = "sb3_sac"  # the peer: Stable-Baselines3's SAC from scratch (benchmarks/sb3_peer.py), same env and evaluation
D3RLPY = ("d3rlpy_cql", "d3rlpy_iql")  # offline peers on the same store (benchmarks/d3rlpy_peer.py)
DEFAULT_ALGOS = [name for name in PROFILES["cpu"] if name not in ("calql", "ibrl_calql")]
OFFLINE_ONLY = ("bc", "calql_offline", *D3RLPY)  # no online phase: drawn flat over the online budget


IMAGE_SIZE = 64  # --camera: square frames, as DrQ and SERL's state-plus-image policies read them


CPU_CONV_STRIDES = "[2,2,2,1]"  # --camera, CPU profile: DrQ's four convs at a quarter of the cost


def pixel_inputs(camera: str | None, profile: str) -> list[str]:
    """The overrides that make a learner read the camera and the arm's own state only."""
    if camera is None:
        return []
    strides = [f"algo.agent.conv_strides={CPU_CONV_STRIDES}"] if profile == "cpu" else []
    return [f"cameras=[{camera}]", "obs_keys=[state]", f"image_size=[{IMAGE_SIZE},{IMAGE_SIZE}]", *strides]


def collect(out: Path, task: str, dataset: Path, episodes: int, noise: float, camera: str | None) -> None:
    if dataset.exists():
        return
    cameras = [] if camera is None else [f"cameras=[{camera}]", f"image_size=[{IMAGE_SIZE},{IMAGE_SIZE}]"]
    subprocess.run([sys.executable, "-m", "robot_rl.cli.main", "collect", "robot=widowx", f"task={task}",
                    f"episodes={episodes}", f"noise={noise}", f"out={dataset}", f"run_dir={out / 'collect'}",
                    *cameras], check=True)


def train(out: Path, task: str, name: str, seed: int, overrides: list[str], eval_every: int, episodes: int,
          extend_to: int | None = None) -> Path:
    """One run, as a subprocess. ``extend_to``: a run already in ``out`` goes on to that many online steps
    from its last checkpoint; an offline run, or one already that far, is kept as it is."""
    run_dir = out / f"{name}_seed{seed}"
    evaluation = [f"eval.every_env_steps={eval_every}", "eval.every_updates=0", f"eval.episodes={episodes}",
                  "eval.video=false", "threads=1"]
    extend = extend_to is not None and (run_dir / "checkpoints").is_dir()
    if extend:
        if name in OFFLINE_ONLY or read_evaluations(run_dir)[-1]["env_steps"] >= extend_to:
            return run_dir
        # the run's saved config stays; only the budgets change
        budgets = [o for o in overrides if o.startswith("algo.schedule.")]
        cmd = [sys.executable, "-m", "robot_rl.cli.main", "train", "resume=true", f"run_dir={run_dir}", *evaluation,
               *budgets]
    elif name == SB3:
        cmd = [sys.executable, str(Path(__file__).with_name("sb3_peer.py")), "--task", task, "--seed", str(seed),
               "--eval-every", str(eval_every), "--episodes", str(episodes), "--run-dir", str(run_dir), *overrides]
    elif name in D3RLPY:
        cmd = [sys.executable, str(Path(__file__).with_name("d3rlpy_peer.py")), "--algo", name.removeprefix("d3rlpy_"),
               "--task", task, "--seed", str(seed), "--episodes", str(episodes), "--run-dir", str(run_dir), *overrides]
    else:
        cmd = [sys.executable, "-m", "robot_rl.cli.main", "train", f"task=widowx_{task}", f"seed={seed}",
               *evaluation, f"run_dir={run_dir}", *overrides]
    with open(out / f"{name}_seed{seed}.log", "a" if extend else "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return run_dir


def curve_rows(name: str, seed: int, run_dir: Path, online: int) -> list[dict]:
    evals = read_evaluations(run_dir)
    if name in OFFLINE_ONLY:  # no online phase: its final evaluation, flat over the online budget
        last = evals[-1]
        return [{"algo": name, "seed": seed, "env_steps": s, "success_rate": last["success_rate"],
                 "return": last["return"]} for s in (0, online)]
    online_evals = [e for e in evals if e["phase"] not in ("offline", "start")] or evals
    pretrained = [e for e in evals if e["phase"] == "offline"][-1:]
    return [{"algo": name, "seed": seed, "env_steps": int(e["env_steps"]), "success_rate": e["success_rate"],
             "return": e["return"]} for e in [*pretrained, *online_evals]]


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Success rate and (dense, staged) return against online steps: mean over seeds, band min..max."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric, label in ((axes[0], "success_rate", "evaluation success rate"),
                              (axes[1], "return", "evaluation return (dense reward)")):
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
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def spread(values: list[float], fmt: str) -> str:
    """mean, and min..max over seeds when there are several."""
    mean = sum(values) / len(values)
    return fmt.format(mean) + (f" ({fmt.format(min(values))}..{fmt.format(max(values))})" if len(values) > 1 else "")


def report(rows: list[dict], title: str) -> None:
    """Per algorithm: success and return at 0 and at the end of the online budget (mean over seeds, range),
    and the final success against BC's on the same data (the baseline every result is read against)."""
    table = Table(title=title)
    for col in ("algorithm", "seeds", "success at 0 online steps", "success at end", "return at 0", "return at end",
                "success at end - BC"):
        table.add_column(col, justify="right")
    final = {}
    for algo in dict.fromkeys(r["algo"] for r in rows):
        mine = [r for r in rows if r["algo"] == algo]
        final[algo] = [r for r in mine if r["env_steps"] == max(x["env_steps"] for x in mine)]
    bc = sum(r["success_rate"] for r in final["bc"]) / len(final["bc"]) if "bc" in final else None
    for algo, last in final.items():
        mine = [r for r in rows if r["algo"] == algo]
        first = [r for r in mine if r["env_steps"] == min(x["env_steps"] for x in mine)]
        end = sum(r["success_rate"] for r in last) / len(last)
        table.add_row(algo, str(len(last)), spread([r["success_rate"] for r in first], "{:.0%}"),
                      spread([r["success_rate"] for r in last], "{:.0%}"), spread([r["return"] for r in first], "{:.1f}"),
                      spread([r["return"] for r in last], "{:.1f}"), "" if bc is None else f"{end - bc:+.0%}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("pick_place", "reach"), default="pick_place")
    parser.add_argument("--dynamics", default="nominal", help="the twin's dynamics preset for training and "
                        "evaluation (perturbed: the demo's stand-in for the real robot); demos are on nominal")
    parser.add_argument("--algos", default=",".join([*DEFAULT_ALGOS, SB3]), help="comma-separated subset")
    parser.add_argument("--override", action="append", default=[], metavar="ALGO:key=value",
                        help="an extra `robot-rl train` override for one algorithm (repeatable)")
    parser.add_argument("--tag", default="", help="a suffix for the output folder (compare variants)")
    parser.add_argument("--offline-updates", type=int, default=None)
    parser.add_argument("--online-steps", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run first-seed .. first-seed + seeds - 1")
    parser.add_argument("--demos", type=int, default=50)
    parser.add_argument("--eval-episodes", type=int, default=None, help="evaluation episodes per point (10)")
    parser.add_argument("--noise", type=float, default=0.05, help="the scripted expert's action noise "
                        "(make demo records with 0.1)")
    parser.add_argument("--camera", default=None, help="learn from this camera (64 x 64) and the arm's state, "
                        "without task_state: e.g. front")
    parser.add_argument("--jobs", type=int, default=2, help="training runs at a time (default 2: the 2-core VM)")
    parser.add_argument("--device", default="cpu", help="the learner's torch device for every run (cpu | cuda)")
    parser.add_argument("--replot", action="store_true", help="redraw the PNG and table from curves.csv")
    parser.add_argument("--extend", action="store_true", help="online runs already in the output folder go on "
                        "from their last checkpoint to this budget (robot-rl train resume=true) instead of starting "
                        "over; offline ones already there are kept")
    args = parser.parse_args()
    out = OUT / (args.task + (f"_{args.tag}" if args.tag else ""))
    title = f"WidowX {args.task} twin ({args.dynamics} dynamics), {args.demos} scripted demonstrations"
    if args.camera:
        title += f", from the {args.camera} camera ({IMAGE_SIZE} x {IMAGE_SIZE}) and state"
    if args.replot:
        with open(out / "curves.csv", newline="") as f:
            rows = [{**r, "env_steps": int(r["env_steps"]), "success_rate": float(r["success_rate"]),
                     "return": float(r["return"])} for r in csv.DictReader(f)]
        plot(rows, out / "curves.png", title)
        report(rows, f"{out / 'curves.csv'}")
        return
    online, offline, warmup, eval_every, episodes, seeds = (
        (600, 300, 200, 200, 3, 1) if args.quick else (12000, 4000, 1000, 1500, 10, 2))
    online, offline = args.online_steps or online, args.offline_updates or offline
    seeds, episodes = args.seeds or seeds, args.eval_episodes or episodes
    chosen = args.algos.split(",")
    extra = {name: [] for name in chosen}
    for item in args.override:
        name, _, override = item.partition(":")
        if name not in extra or "=" not in override:
            parser.error(f"--override {item!r}: expected ALGO:key=value with ALGO one of {chosen}")
        extra[name].append(override)
    peers = [name for name in chosen if name in (SB3, *D3RLPY)]
    if args.camera and peers:
        parser.error(f"--camera: the peers read state only; leave {', '.join(peers)} out of --algos")
    out.mkdir(parents=True, exist_ok=True)
    camera_tag = f"_{args.camera}{IMAGE_SIZE}" if args.camera else ""
    dataset = OUT / f"{args.task}_demos{args.demos}_noise{args.noise:g}{camera_tag}.zarr"
    collect(out, args.task, dataset, args.demos, args.noise, args.camera)
    profile = PROFILES[args.profile]
    every = algorithms(dataset.resolve(), online, offline, warmup)
    unknown = sorted(set(chosen) - set(every))
    if unknown:
        parser.error(f"--algos: unknown {unknown}; expected some of {sorted(every)}")
    run_wide = {name: ["--profile", args.profile, "--dynamics", args.dynamics, "--device", args.device] if name in peers
                else [*profile[name], f"sim.dynamics={args.dynamics}", f"device={args.device}",
                      *pixel_inputs(args.camera, args.profile)] for name in chosen}
    jobs = [(name, seed, [*every[name], *run_wide[name], *extra[name]]) for name in chosen
            for seed in range(args.first_seed, args.first_seed + seeds)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda job: (job[0], job[1], train(out, args.task, job[0], job[1], job[2], eval_every,
                                                                episodes, online if args.extend else None)),
                         jobs))
    rows = [row for name, seed, run_dir in runs for row in curve_rows(name, seed, run_dir, online)]
    with open(out / "curves.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["algo", "seed", "env_steps", "success_rate", "return"])
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / "curves.png", title)
    online_note = f", {online} online steps" if set(chosen) - set(OFFLINE_ONLY) else ""
    report(rows, f"{title}: {offline} offline updates{online_note}, profile {args.profile}")
    console.print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}")


if __name__ == "__main__":
    main()
