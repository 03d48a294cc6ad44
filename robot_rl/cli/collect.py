"""``robot-rl collect key=value ...``: record scripted demonstrations from a twin into a store.

    robot-rl collect robot=widowx task=pick_place source=scripted episodes=50 out=data/wx.zarr

The store is appended to when it exists (its spec must match) and created otherwise; the resolved
config lands in ``runs/collect/<date>_<time>/config.yaml``. Ctrl-C keeps every committed episode.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from robot_rl.cli.checks import check_config
from robot_rl.cli.config import ConfigError, add_verb, errors, load_config, report_error, save_run_config
from robot_rl.cli.progress import job_progress
from robot_rl.datasets import StoreError, StoreWriter
from robot_rl.datasets.layout import local_path

console = Console()
SOURCES = ("scripted",)


def add_parser(verbs) -> None:
    add_verb(verbs, "collect", run, 'record scripted demonstrations from a MuJoCo twin into a store', __doc__.split("\n\n")[0],
             'robot=widowx task=reach episodes=20 out=data/reach.zarr cameras=[front] sim.dynamics=perturbed')


def run(args) -> int:
    try:
        cfg = load_config("collect", args.overrides)  # task=widowx_reach or none (the robot's default), as every verb
        if cfg.source not in SOURCES:
            raise ConfigError(f"source={cfg.source!r}: the twins record {SOURCES}; teleop is recorded "
                              "on the robot by the recorder node")
        check_config("collect", args.overrides, cfg, robots_extra=("robosuite",))
        return collect(cfg)
    except (ConfigError, StoreError, ValueError) as e:
        return report_error(e)


def make_env_and_expert(cfg):
    """The twin (or robosuite environment, with robot=robosuite) and its scripted expert's class."""
    if cfg.robot == "robosuite":
        from robot_rl.sim.robosuite_adapter import EXPERTS, RobosuiteEnv
        if cfg.task not in EXPERTS:
            raise ConfigError(f"task={cfg.task!r}: robosuite tasks with a scripted expert are {sorted(EXPERTS)}")
        env = RobosuiteEnv(cfg.task, cameras=tuple(cfg.cameras), image_size=tuple(cfg.image_size),
                           reward_type=cfg.reward_type, max_steps=cfg.max_steps or 200)
        return env, lambda env, noise, seed: EXPERTS[cfg.task](env, noise=noise, seed=seed)
    from robot_rl.sim import make_env, make_expert
    env = make_env(cfg.robot, cfg.task, reward_type=cfg.reward_type, cameras=tuple(cfg.cameras),
                   image_size=tuple(cfg.image_size), dynamics=dict(cfg.sim.dynamics),
                   max_steps=cfg.max_steps, terminate_on_success=cfg.terminate_on_success)
    return env, make_expert


def collect(cfg) -> int:
    from robot_rl.sim.recording import record_episode

    env, make_expert = make_env_and_expert(cfg)
    spec = with_codec(env.embodiment, cfg.codec)
    results, started = [], time.perf_counter()
    with StoreWriter.open_or_create(cfg.out, spec, overwrite=cfg.overwrite) as writer, job_progress(console, "successes") as progress:
        run_dir = save_run_config(cfg)  # once the store has accepted the spec: a refused run writes nothing
        first = writer.num_episodes
        bar = progress.add_task(f"{cfg.robot}/{cfg.task}", total=cfg.episodes, successes="")
        try:
            for i in range(cfg.episodes):
                expert = make_expert(env, noise=cfg.noise, seed=cfg.seed + first + i)
                results.append(record_episode(
                    env, expert, writer, seed=cfg.seed + first + i, source=cfg.source,
                    on_reset=expert.reset, task=cfg.task, noise=cfg.noise,
                    dynamics=dict(cfg.sim.dynamics)))
                rate = sum(r.success for r in results) / len(results)
                progress.update(bar, advance=1, successes=f"success {rate:.0%}")
        except KeyboardInterrupt:
            errors.print(f"interrupted: {len(results)} new episodes are committed; the one in progress was dropped")
        total_episodes = writer.num_episodes
    env.close()
    _summary(cfg, results, total_episodes, time.perf_counter() - started, run_dir)
    return 0


def with_codec(spec, codec: str):
    cameras = {name: dataclasses.replace(cam, codec=codec) for name, cam in spec.cameras.items()}
    return dataclasses.replace(spec, cameras=cameras)


def _summary(cfg, results, total_episodes: int, seconds: float, run_dir: Path) -> None:
    frames = sum(r.steps for r in results)
    table = Table(title=f"collected into {cfg.out}", show_header=False)
    table.add_row("new episodes", f"{len(results)} (store now holds {total_episodes})")
    table.add_row("success rate", f"{sum(r.success for r in results) / max(len(results), 1):.0%}")
    table.add_row("frames", f"{frames} ({frames / max(seconds, 1e-9):.0f} frames/s)")
    table.add_row("size on disk", _size_on_disk(cfg.out))
    table.add_row("config", str(run_dir / "config.yaml"))
    console.print(table)


def _size_on_disk(url: str) -> str:
    path = local_path(url)
    if path is None:
        return "n/a (remote store)"
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return f"{size / 2**20:.1f} MiB"
