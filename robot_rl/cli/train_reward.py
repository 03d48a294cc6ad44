"""``robot-rl train-reward store=<store> camera=front``: train the learned reward (a success classifier on one
camera, robot_rl.learner.reward_classifier) and print its precision and recall on held-out episodes.

    robot-rl train-reward store=data/pick_place.zarr camera=front epochs=20
    robot-rl finetune backend=dynamixel ... reward_classifier=runs/train_reward/<run>   # use it on hardware

The run folder holds the classifier (``reward_classifier.safetensors``, ``reward_classifier.json`` with the
held-out metrics) and the resolved config.
"""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from robot_rl.cli.config import ConfigError, add_verb, load_config, report_error, save_run_config
from robot_rl.datasets import StoreError

console = Console()


def add_parser(verbs) -> None:
    add_verb(verbs, "train-reward", run, "train a success classifier on camera frames (a learned reward)",
             __doc__.split("\n\n")[0], "store=data/pp.zarr camera=front epochs=20")


def run(args) -> int:
    try:
        cfg = load_config("train_reward", args.overrides)
        return train_reward(cfg)
    except (ConfigError, StoreError, ValueError, FileNotFoundError) as e:
        return report_error(e)


def train_reward(cfg) -> int:
    from robot_rl.learner.reward_classifier import train_classifier

    for key in ("epochs", "size", "width", "batch_size"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigError(f"{key}={cfg[key]!r}: expected a positive integer")
    if not 0.0 < float(cfg.holdout) < 1.0:
        raise ConfigError(f"holdout={cfg.holdout}: expected a fraction of the episodes in (0, 1)")
    run_dir = save_run_config(cfg)
    _, report = train_classifier(cfg.store, camera=cfg.camera, out=run_dir, size=cfg.size, width=cfg.width,
                                 epochs=cfg.epochs, batch_size=cfg.batch_size, lr=float(cfg.lr),
                                 holdout=float(cfg.holdout), threshold=float(cfg.threshold),
                                 reward_at=float(cfg.reward_at), success_tail=cfg.success_tail, seed=cfg.seed,
                                 log=lambda line: console.print(line, markup=False))
    table = Table(title=f"reward classifier on {cfg.camera} (threshold {cfg.threshold})")
    for column in ("split", "frames", "success frames", "precision", "recall", "accuracy"):
        table.add_column(column, justify="right")
    for split in ("train", "held_out"):
        m = report[split]
        table.add_row(split.replace("_", "-"), str(m["frames"]), str(m["positives"]), f"{m['precision']:.3f}",
                      f"{m['recall']:.3f}", f"{m['accuracy']:.3f}")
    console.print(table)
    console.print(f"classifier: {run_dir}", soft_wrap=True)
    return 0
