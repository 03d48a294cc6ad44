"""Twin task names on the command line: ``task=widowx_pick_place`` means robot=widowx task=pick_place.
Pure Python, so the CLI can resolve names without importing torch or MuJoCo."""
from __future__ import annotations

ROBOTS = ("widowx", "franka", "rc_car")


def split_task(cfg):
    """Rewrite ``cfg.task = "<robot>_<task>"`` into ``cfg.robot, cfg.task``; other names pass through."""
    for robot in ROBOTS:
        if cfg.task is not None and cfg.task.startswith(robot + "_"):
            cfg.robot, cfg.task = robot, cfg.task[len(robot) + 1:]
    return cfg
