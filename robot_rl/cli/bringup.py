"""``robot-rl bringup <graph> key=value ...``: run a robot job's node graph as plain processes.

    robot-rl bringup teleop_collect robot=widowx backend=twin teleop=scripted episodes=5 out=data/wx.zarr
    robot-rl bringup deploy backend=twin checkpoint=runs/train/<run>

The same graphs as ``ros2 launch robot_rl <graph>.launch.py`` (robot_rl/launch/graphs.py), for machines
with only the pip ROS 2 wheels. Each process's output is prefixed with its name and kept in
``runs/bringup/<date>_<time>/logs/``; Ctrl-C stops every node cleanly (torque off, the recorder keeps
every committed episode).
"""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict

from robot_rl.cli.checks import check_config
from robot_rl.cli.config import ConfigError, load_config, report_error, save_run_config

BAD_INPUT = (ConfigError, ValueError, TypeError)  # what graph_options and build_graph raise for bad input


def add_parser(verbs) -> None:
    from robot_rl.launch.graphs import GRAPHS

    parser = verbs.add_parser("bringup", help="run a robot job's ROS 2 node graph as plain processes",
                              description=__doc__.split("\n\n")[0])
    parser.add_argument("graph", choices=sorted(GRAPHS), help="teleop_collect | deploy")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides (robot_rl/configs/bringup.yaml), e.g. backend=twin teleop=scripted")
    parser.set_defaults(run=run)


def run(args) -> int:
    import os

    from robot_rl.drivers.network import apply_dds_environment
    from robot_rl.launch.graphs import build_graph

    try:
        cfg, options = graph_options(args.graph, args.overrides)
        processes = build_graph(args.graph, options)
        apply_dds_environment(dict(os.environ))  # a bad ROBOT_RL_NETWORK is refused before anything starts
    except BAD_INPUT as e:
        return report_error(e)
    return run_processes(cfg, processes)


def graph_options(graph: str, overrides: list[str]):
    """(the resolved bringup config, with ``graph`` kept in it; the graph Options it gives) from
    robot_rl/configs/bringup.yaml and ``overrides``. Raises one of BAD_INPUT for bad input."""
    from robot_rl.launch.graphs import Options

    cfg = load_config("bringup", overrides)  # task=widowx_reach or none (the robot's default), as in every verb
    check_config("bringup", overrides, cfg)
    settings = OmegaConf.to_container(cfg)
    for key in ("grace_s", "run_dir"):  # the supervisor's, not the graph's
        settings.pop(key)
    settings["cameras"] = tuple(settings["cameras"])
    options = Options(**settings)
    with open_dict(cfg):
        cfg.graph = graph  # kept in the run's config.yaml
    return cfg, options


def run_processes(cfg: DictConfig, processes) -> int:
    """Write the config into its run folder and run the processes to the graph's end (logs in
    <run_dir>/logs/); the graph's exit status."""
    from robot_rl.launch.supervisor import run_graph

    run_dir = save_run_config(cfg)
    return run_graph(processes, run_dir / "logs", grace_s=cfg.grace_s)
