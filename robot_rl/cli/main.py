"""``robot-rl``: one command, a verb per job. ``robot-rl data --help`` lists the store verbs;
``robot-rl collect`` records twin demonstrations; ``robot-rl train`` trains a policy and ``robot-rl eval``
evaluates one; ``robot-rl bringup`` runs a robot job's ROS 2 node graph; ``robot-rl finetune`` pretrains and
fine-tunes on the robot or its twin; ``robot-rl deploy`` runs a policy on the robot and reports its success
and latencies; ``robot-rl demo`` runs all of it on the twin (``make demo``)."""
from __future__ import annotations

import argparse
import sys

from robot_rl.cli import bringup, collect, data, demo, deploy, evaluate, finetune, train, train_reward


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robot-rl", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    data.add_parser(verbs)
    collect.add_parser(verbs)
    train.add_parser(verbs)
    evaluate.add_parser(verbs)
    bringup.add_parser(verbs)
    deploy.add_parser(verbs)
    finetune.add_parser(verbs)
    train_reward.add_parser(verbs)
    demo.add_parser(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
