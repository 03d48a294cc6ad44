"""``robot-rl bringup <graph> key=value ...``: run a robot job's node graph as plain processes.

    robot-rl bringup teleop_collect robot=widowx backend=twin teleop=scripted episodes=5 out=data/wx.zarr
    robot-rl bringup deploy backend=twin checkpoint=runs/train/<run>

The same graphs as ``ros2 launch robot_rl <graph>.launch.py`` (robot_rl/launch/graphs.py), for machines
with only the pip ROS 2 wheels. Each process's output is prefixed with its name and kept in
``runs/bringup/<date>_<time>/logs/``; Ctrl-C stops every node cleanly (torque off, the recorder keeps
every committed episode).
"""
from __future__ import annotations

from omegaconf import OmegaConf, open_dict
from rich.console import Console

from robot_rl.cli.config import ConfigError, load_config, save_run_config

errors = Console(stderr=True, soft_wrap=True)


def add_parser(verbs) -> None:
    from robot_rl.launch.graphs import GRAPHS

    parser = verbs.add_parser("bringup", help="run a robot job's ROS 2 node graph as plain processes",
                              description=__doc__.split("\n\n")[0])
    parser.add_argument("graph", choices=sorted(GRAPHS), help="teleop_collect | deploy")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides (robot_rl/configs/bringup.yaml), e.g. backend=twin teleop=scripted")
    parser.set_defaults(run=run)


def run(args) -> int:
    from robot_rl.launch.graphs import Options, build_graph
    from robot_rl.launch.supervisor import run_graph

    try:
        cfg = load_config("bringup", args.overrides)
        settings = OmegaConf.to_container(cfg)
        grace_s, run_dir = settings.pop("grace_s"), settings.pop("run_dir")
        settings["cameras"] = tuple(settings["cameras"])
        processes = build_graph(args.graph, Options(**settings))
    except (ConfigError, ValueError, TypeError) as e:
        errors.print(f"[bold red]error:[/] {e}", highlight=False)
        return 2
    with open_dict(cfg):
        cfg.graph = args.graph  # kept in the run's config.yaml
    run_dir = save_run_config(cfg)
    return run_graph(processes, run_dir / "logs", grace_s=grace_s)
