"""``robot-rl data info|validate|recover|stats|synth PATH``: look after a trajectory store; ``import`` and
``export`` convert (robot_rl.cli.data_formats)."""
from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from robot_rl.cli import data_formats
from robot_rl.cli.config import errors, report_error
from robot_rl.datasets.errors import StoreError

console = Console()


def add_parser(verbs) -> None:
    data = verbs.add_parser("data", help="inspect, check, repair and summarize trajectory stores")
    sub = data.add_subparsers(dest="data_verb", required=True)

    def verb(name, run, help):
        p = sub.add_parser(name, help=help)
        p.add_argument("path", help="store folder, or a URL such as s3://bucket/run.zarr (cloud extra)")
        p.set_defaults(run=_guarded(run))
        return p

    p = verb("info", info, "what a store holds: spec, episodes, sources, size; reads every chunk as validate "
             "does and warns about damage (exit 1 when validate would fail)")
    p.add_argument("--no-check", action="store_true", help="skip reading every chunk (large stores)")
    verb("validate", validate, "read everything, report every problem, change nothing (exit 1 on errors)")
    p = verb("recover", recover, "settle the steps a crashed recorder left after its last episode "
             "(exit 1: --salvage found none it could keep)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--salvage", dest="mode", action="store_const", const="salvage",
                      help="keep them as an episode marked truncated and recovered")
    mode.add_argument("--drop", dest="mode", action="store_const", const="drop", help="remove them")
    p.add_argument("--break-lock", action="store_true", help="remove a dead writer's lock (remote stores)")
    p = verb("stats", stats, "normalization statistics per key")
    p.add_argument("--update", action="store_true", help="bring statistics up to date with every commit first")
    p = verb("copy", copy, "copy a store, optionally re-encoding its cameras (e.g. --codec lz4 to train from)")
    p.add_argument("dst", help="the new store")
    p.add_argument("--codec", choices=["zstd", "lz4", "raw", "jpeg"], help="camera codec of the copy")
    p.add_argument("--overwrite", action="store_true")
    p = verb("synth", synth, "record synthetic episodes (for demos and benchmarks)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--length", type=int, default=100, help="steps per episode")
    p.add_argument("--cameras", default="front,wrist", help="comma-separated camera names ('' for none)")
    p.add_argument("--size", default="128x128", help="camera HxW")
    p.add_argument("--codec", default="zstd", choices=["zstd", "lz4", "raw", "jpeg"])
    p.add_argument("--overwrite", action="store_true")
    data_formats.add_verbs(sub, _guarded)


def _guarded(run):
    def wrapped(args) -> int:
        try:
            return run(args)
        except StoreError as e:
            return report_error(e)
    return wrapped


def info(args) -> int:
    from robot_rl.datasets.reader import TrajectoryReader

    reader = TrajectoryReader(args.path)
    spec = reader.spec
    infos = [reader.episode_info(i) for i in range(reader.num_episodes)]
    lengths = np.diff(np.concatenate([[0], reader.episode_ends]))
    console.print(f"[bold]{args.path}[/]  robot [cyan]{spec.name}[/] at {spec.control_rate_hz:g} Hz")
    summary = Table(show_header=False, box=None)
    summary.add_row("episodes", f"{reader.num_episodes}")
    summary.add_row("steps", f"{reader.num_steps}  ({reader.num_steps / spec.control_rate_hz / 60:.1f} min)")
    if len(lengths):
        summary.add_row("episode length", f"min {lengths.min()}  mean {lengths.mean():.1f}  max {lengths.max()}")
    known = [i["success"] for i in infos if i.get("success") is not None]
    if known:
        summary.add_row("success", f"{np.mean(known):.0%} of {len(known)} labelled")
    summary.add_row("sources", ", ".join(f"{k} {v}" for k, v in collections.Counter(i["source"] for i in infos).items()) or "-")
    recovered = sum(bool(i.get("recovered")) for i in infos)
    if recovered:
        summary.add_row("recovered", f"{recovered} episodes salvaged after a crash")
    instructions = collections.Counter(i.get("instruction", "") for i in infos if i.get("instruction"))
    for text, count in instructions.most_common(5):
        summary.add_row("instruction", f"{count} x {text!r}")
    size = _disk_size(args.path)
    if size is not None:
        summary.add_row("size on disk", f"{size / 2**20:.1f} MiB")
    console.print(summary)
    keys = Table(title="keys")
    for column in ("key", "shape", "dtype", "units", "storage"):
        keys.add_column(column)
    for key, key_spec in spec.keys().items():
        camera = spec.cameras.get(key)
        storage = f"{camera.codec}, one frame per chunk" if camera else "zstd"
        keys.add_row(key, str(key_spec.shape), key_spec.dtype, key_spec.units, storage)
    console.print(keys)
    if args.no_check:
        console.print("chunks not read (--no-check): `robot-rl data validate` checks them")
        return 0
    errors = [p for p in _problems(args.path) if p.severity == "error"]
    if not errors:
        return 0
    console.print(f"[bold red]warning:[/] {escape(str(args.path))} fails validation ({len(errors)} problems, each "
                  "with its fix below; `robot-rl data validate` lists the same)", highlight=False, soft_wrap=True)
    _print_problems(errors)
    return 1


def _problems(path) -> list:
    from robot_rl.datasets.repair import validate as run_validate

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("reading every chunk", total=None)
        return run_validate(path, lambda key, total: bar.update(task, total=total, advance=1))


def _print_problems(problems) -> None:
    for p in problems:
        style = "red" if p.severity == "error" else "yellow"
        console.print(f"[{style}]{p.severity}:[/] {escape(p.message)}", highlight=False, soft_wrap=True)


def validate(args) -> int:
    problems = _problems(args.path)
    _print_problems(problems)
    errors = sum(p.severity == "error" for p in problems)
    if not problems:
        console.print(f"[green]{args.path} is sound[/]")
    return 1 if errors else 0


def recover(args) -> int:
    from robot_rl.datasets.repair import recover as run_recover
    from robot_rl.datasets.writer import FLUSH_INTERVAL_S

    result = run_recover(args.path, mode=args.mode, break_lock=args.break_lock)
    tail, kept = result["tail_steps"], result["steps"] - result["steps_before"]
    if tail == 0:
        console.print(f"nothing to recover: {result['episodes']} committed episodes, no uncommitted steps")
    elif args.mode == "drop":
        console.print(f"dropped {tail} uncommitted steps; {result['episodes']} episodes kept")
    elif kept == 0:  # exit status 1: the steps could not be kept (they are removed; committed episodes intact)
        errors.print(f"nothing could be salvaged: none of the {tail} uncommitted steps was marked as completely "
                     f"written (the writer stopped while writing them, less than {FLUSH_INTERVAL_S:g} s after they "
                     f"arrived); they were removed. The {result['episodes']} committed episodes are intact.",
                     markup=False, highlight=False, soft_wrap=True)
        return 1
    else:
        lost = f"; the last {tail - kept} were still being written when the writer stopped and were removed" \
            if kept < tail else ""
        console.print(f"salvaged 1 episode ({kept} steps) of {tail} uncommitted steps{lost}; "
                      f"{result['episodes']} episodes now", markup=False, highlight=False, soft_wrap=True)
    return 0


def stats(args) -> int:
    from robot_rl.datasets.reader import TrajectoryReader
    from robot_rl.datasets.writer import StoreWriter

    if args.update:
        StoreWriter(args.path).close()  # opening a writer catches statistics up
    reader = TrajectoryReader(args.path)
    table = Table(title=f"normalization statistics ({reader.num_steps} steps)")
    for column in ("key", "dim", "mean", "std", "min", "max", "p01", "p99"):
        table.add_column(column, justify="right" if column != "key" else "left")
    for key, s in reader.stats().items():
        flat = {k: np.atleast_1d(v) for k, v in s.items() if k != "count"}
        for d in range(len(flat["mean"])):
            table.add_row(key if d == 0 else "", str(d), *(f"{flat[c][d]:.4g}" for c in ("mean", "std", "min", "max", "p01", "p99")))
    console.print(table)
    return 0


def copy(args) -> int:
    from robot_rl.datasets.copy import copy_store

    with Progress(console=console) as bar:
        task = bar.add_task("copying episodes", total=None)
        count = copy_store(args.path, args.dst, codec=args.codec, overwrite=args.overwrite,
                           on_episode=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"copied {count} episodes to {args.dst}")
    return 0


def synth(args) -> int:
    from robot_rl.datasets.synthetic import SyntheticEpisodes, synthetic_spec
    from robot_rl.datasets.writer import StoreWriter

    height, width = (int(v) for v in args.size.lower().split("x"))
    cameras = tuple(c for c in args.cameras.split(",") if c)
    spec = synthetic_spec(cameras=cameras, height=height, width=width, codec=args.codec)
    episodes = SyntheticEpisodes(spec, seed=0)
    rng = np.random.default_rng(0)
    with StoreWriter.create(args.path, spec, overwrite=args.overwrite) as writer, Progress(console=console) as bar:
        task = bar.add_task("recording synthetic episodes", total=args.episodes)
        for _ in range(args.episodes):
            episode = writer.new_episode(instruction="reach the target", source="scripted")
            for frame in episodes.frames(args.length, terminated=bool(rng.random() < 0.5)):
                episode.add(frame)
            episode.commit(success=bool(rng.random() < 0.6))
            bar.advance(task)
    console.print(f"wrote {args.episodes} episodes to {args.path}")
    return 0


def _disk_size(path) -> int | None:
    if "://" in os.fspath(path):
        return None
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
