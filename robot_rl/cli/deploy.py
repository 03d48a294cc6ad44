"""``robot-rl deploy checkpoint=<path> key=value ...``: a trained policy on the robot, through the driver's
safety filter, and a report of how it went.

    robot-rl deploy checkpoint=runs/train/<run> backend=twin steps=50
    robot-rl deploy checkpoint=runs/train/<run> backend=dynamixel camera_devices.front=/dev/video0

The `deploy` node graph of ``robot-rl bringup`` (the driver, its cameras and the policy node; the same
config, robot_rl/configs/bringup.yaml), run in ``runs/deploy/<date>_<time>/`` (``run_dir=`` to change
it). On the twin the job ends after ``steps`` actions (default: the task's step limit) or on success; on
hardware at Ctrl-C. The policy node then writes ``deploy.json`` into the run folder, and this prints it
as a table: success (twin only), actions sent, inference latency and command latency p50/p99 (the round
trip ee_delta_command -> the driver's ee_command_applied: robot_rl.drivers.policy_node).
The policy runs the checkpoint's own task: a ``task=`` naming another task is refused (status 2).
The exit status is the graph's: 0 when the job ended, 130 after Ctrl-C, 1 when a process failed; 2 for
bad input.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from robot_rl.cli.bringup import BAD_INPUT, graph_options, run_processes
from robot_rl.cli.config import report_error

console = Console()
GRAPH = "deploy"
RUN_DIR = "run_dir=runs/deploy/${now:%Y-%m-%d_%H-%M-%S}"  # before the user's overrides: run_dir= wins
REPORT = "deploy.json"


def add_parser(verbs) -> None:
    parser = verbs.add_parser("deploy", help="run a trained policy on the robot (twin or hardware) and report "
                                             "success and latencies", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides (robot_rl/configs/bringup.yaml), e.g. checkpoint=runs/train/<run> "
                             "backend=twin steps=50")
    parser.set_defaults(run=run)


def run(args) -> int:
    from robot_rl.launch.graphs import build_graph

    try:
        cfg, options = graph_options(GRAPH, [RUN_DIR, *args.overrides])
        report = Path(cfg.run_dir).absolute() / REPORT
        processes = build_graph(GRAPH, dataclasses.replace(options, report=str(report)))
        if not Path(options.checkpoint).exists():
            raise ValueError(f"checkpoint={options.checkpoint}: no such file or folder (expected a checkpoint, "
                             "checkpoints/ or run folder from `robot-rl train`)")
        check_checkpoint(options.checkpoint)
        check_task(cfg, args.overrides, options.checkpoint)
    except BAD_INPUT as e:
        return report_error(e)
    report.unlink(missing_ok=True)  # a run_dir given twice: never show the last run's report
    status = run_processes(cfg, processes)
    console.print(report_table(cfg, report, status))
    return status


def check_checkpoint(path) -> None:
    """A checkpoint the policy node can load (its folder, config and spec.json there), refused here with
    status 2 rather than by a policy node in a graph already started."""
    from robot_rl.learner.checkpoint import resolve_checkpoint
    from robot_rl.learner.policy import read_spec

    try:
        read_spec(resolve_checkpoint(path))
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None


def check_task(cfg, overrides: list[str], path) -> None:
    """A ``task=`` given among ``overrides`` names the checkpoint's task (both as <robot>_<task>); the policy
    node runs the checkpoint's own task, so another one is refused rather than ignored."""
    from robot_rl.cli.config import resolve_task
    from robot_rl.learner.checkpoint import resolve_checkpoint
    from robot_rl.learner.policy import checkpoint_config

    if not any(o.partition("=")[0].lstrip("+") == "task" for o in overrides):
        return
    trained = resolve_task(checkpoint_config(resolve_checkpoint(path)))
    given, own = f"{cfg.robot}_{cfg.task}", f"{trained.robot}_{trained.task}"
    if given != own:
        raise ValueError(f"task={given}: checkpoint={path} was trained on task={own}, and deploy runs the "
                         f"checkpoint's own task; drop task=, or pass the checkpoint of a run trained on {given}")


def report_table(cfg, path: Path, status: int) -> Table:
    """The policy node's report (``path``) as a table; rows saying why where it wrote none."""
    report = json.loads(path.read_text()) if path.exists() else None
    table = Table(title=f"deploy: {cfg.robot} on {cfg.backend} (exit status {status})", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("checkpoint", report["checkpoint"] if report else str(cfg.checkpoint))
    table.add_row("robot / backend", f"{cfg.robot} / {cfg.backend}")
    if report is None:
        table.add_row("report", f"none: the policy node stopped before writing it (see {path.parent / 'logs'})")
    else:
        table.add_row("task", f"{report['task']} (the checkpoint's)")
        success = report["success"]
        table.add_row("success", "n/a (hardware)" if success is None else "yes" if success else "no")
        table.add_row("actions sent", str(report["actions_published"]))
        table.add_row("inference latency", _latency(report, "inference", f"{report['inference_samples']} queries"))
        table.add_row("command latency", _latency(report, "command", f"{report['command_samples']} commands, round "
                      f"trip; {report['commands_unanswered'] + report['commands_pending']} unanswered"))
    table.add_row("run folder", str(path.parent))
    table.add_row("logs", str(path.parent / "logs"))
    return table


def _latency(report: dict, kind: str, samples: str) -> str:
    p50, p99 = report[f"{kind}_p50_ms"], report[f"{kind}_p99_ms"]
    if p50 is None:
        return f"not measured ({samples})"
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms ({samples})"
