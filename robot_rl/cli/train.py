"""``robot-rl train key=value ...``: train an algorithm on a twin task, offline from a store, online on
the twin, or both.

    robot-rl train algo=wsrl robot=widowx task=pick_place dataset=data/wx.zarr
    robot-rl train resume=true run_dir=runs/train/<date>_<time>

The run folder holds config.yaml, checkpoints/, tb/ (TensorBoard), evaluations.csv, online.zarr
(the online episodes; the dataset is never written) and videos/.
"""
from __future__ import annotations

import time
from pathlib import Path

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from robot_rl.cli.checks import check_config
from robot_rl.cli.config import (
    ConfigError,
    add_verb,
    errors,
    load_config,
    report_error,
    resolve_task,
    save_run_config,
)
from robot_rl.cli.progress import job_progress
from robot_rl.datasets import StoreError

console = Console()


def add_parser(verbs) -> None:
    add_verb(verbs, "train", run, 'train SAC, CQL, Cal-QL, RLPD, WSRL, H2O or CO-RFT on a twin task', __doc__.split("\n\n")[0],
             'algo=rlpd task=widowx_pick_place dataset=data/wx.zarr algo.schedule.online_steps=20000 resume=true')


def run(args) -> int:
    try:
        cfg = resolve_run(args.overrides)
        check_config("train", args.overrides, cfg, saved=bool(cfg.resume))
        return train(cfg)
    except (ConfigError, StoreError, ValueError, FileNotFoundError) as e:
        return report_error(e)


def resolve_run(overrides: list[str], verb: str = "train", saved_config: bool = False):
    """The config of a new run, or with ``resume=true`` (or ``saved_config``) the saved config of
    ``run_dir`` (default: the newest run beside it) with the other overrides applied on top. Robot and task
    are resolved either way (``task=widowx_reach``; ``task: null``: the robot's default task)."""
    cfg = load_config(verb, overrides)
    if not (cfg.resume or saved_config):
        return cfg
    given = {o.split("=", 1)[0] for o in overrides}
    run_dir = Path(cfg.run_dir) if "run_dir" in given else newest_run(Path(cfg.run_dir).parent)
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        raise ConfigError(f"resume=true: {saved_path} does not exist; give run_dir=<a folder made by robot-rl {verb}>")
    saved = OmegaConf.load(saved_path)
    extra = [o for o in overrides if o.split("=", 1)[0] not in ("resume", "run_dir")]
    cfg = OmegaConf.merge(saved, OmegaConf.from_dotlist(extra), {"resume": bool(cfg.resume), "run_dir": str(run_dir)})
    return resolve_task(cfg)


def newest_run(parent: Path) -> Path:
    runs = sorted(p for p in parent.glob("*") if (p / "checkpoints").is_dir())
    if not runs:
        raise ConfigError(f"resume=true: no run with checkpoints under {parent}/; give run_dir=<run folder>")
    return runs[-1]


def train(cfg) -> int:
    import torch

    from robot_rl.learner.trainer import Trainer

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = save_run_config(cfg)
    started = time.perf_counter()
    with job_progress(console) as progress:
        trainer = Trainer(cfg, run_dir, progress)
        if trainer.resumed_from:
            console.print(f"resuming from {trainer.resumed_from}", soft_wrap=True)
        try:
            state = trainer.run()
        except KeyboardInterrupt:
            path = trainer.checkpoint()
            errors.print(f"interrupted: saved {path}; continue with `robot-rl train resume=true run_dir={run_dir}`")
            trainer.close()
            return 130
    trainer.close()
    _summary(cfg, trainer, state, time.perf_counter() - started, run_dir)
    return 0


def _summary(cfg, trainer, state, seconds: float, run_dir: Path) -> None:
    table = Table(title=f"{cfg.algo.name} on {cfg.robot}/{cfg.task}", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    last = trainer.last_eval
    rows = {
        "evaluation success": f"{last['success_rate']:.0%} over {cfg.eval.episodes} episodes",
        "evaluation return": f"{last['return']:.2f}",
        "env steps": str(state.env_steps),
        "critic updates": f"{state.critic_updates} ({state.critic_updates / max(seconds, 1e-9):.1f}/s)",
        "wall time": f"{seconds:.0f} s",
        "run folder": str(run_dir),
        "TensorBoard": f"tensorboard --logdir {run_dir / 'tb'}",
    }
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)
