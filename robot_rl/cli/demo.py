"""``robot-rl demo [quick=true]`` (``make demo``): the main job end to end on the WidowX twin, no hardware.

1. 5 scripted reach demonstrations on the nominal twin (``robot-rl collect``);
2. ``robot-rl finetune algo=wsrl``: Cal-QL pretraining on them, then WSRL fine-tuning online on a twin with
   ``perturbed`` dynamics standing in for the real robot (heavier, weaker, laggier, noisier), the actor
   stepping it as fast as the CPU allows (``realtime=false``) beside the learner;
3. behaviour cloning on the same demonstrations with as many updates as the pretraining, evaluated on the
   same perturbed twin (``robot-rl train algo=bc``): the baseline every learning result is read against;
4. the report in ``runs/demo/finetune/report/``: success against steps for the pretrained-only and the
   fine-tuned policy beside BC's, the table, a rollout video and the resolved config.

``quick=true`` shrinks every budget (a CI smoke run of the same path; its numbers mean nothing).
Everything under runs/demo/ is rewritten.

Why five demonstrations of reach: it is a setting where imitation is not enough, so the demo shows what
offline RL and fine-tuning add. From 50 demonstrations behaviour cloning already reaches 100% on the
perturbed twin and there is nothing left to fine-tune (README, "The main job"); from 5 (200 frames, the
targets spread over a 22 x 40 x 17 cm box) BC covers too few targets and reaches 0-20%, Cal-QL, which also
learns from the reward, 25-40%, and WSRL then reaches 100% within 16000 online steps. Pick-and-place does not
learn on 2 CPU cores within the demo's budget. Small networks (2 x 128, two critics), batch 128, discount
0.9 with 3-step returns and learning rate 1e-3 are what make it fit in about 4 minutes; the algorithm
itself is unchanged (robot_rl/configs/algo/wsrl.yaml).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console

from robot_rl.cli.config import ConfigError, load_config, report_error

console = Console()
DEMO_DIR = Path("runs/demo")
STORE = DEMO_DIR / "widowx_reach.zarr"

COLLECT = ["robot=widowx", "task=reach", "episodes=5", "noise=0.1", f"out={STORE}", "overwrite=true",
           f"run_dir={DEMO_DIR / 'collect'}"]
FINETUNE = [
    "robot=widowx", "task=reach", "algo=wsrl", f"dataset={STORE}", "sim.dynamics=perturbed",
    "backend=twin", "realtime=false", f"run_dir={DEMO_DIR / 'finetune'}",
    "algo.agent.hidden=[128,128]", "algo.agent.ensemble_size=2", "algo.agent.n_actions=5",
    "algo.agent.target_entropy_scale=0", "algo.agent.init_temperature=0.05",
    "algo.agent.actor_lr=1e-3", "algo.agent.critic_lr=1e-3",
    "algo.batch_size=128", "algo.discount=0.9", "algo.n_step=3",
    "algo.schedule.offline_updates=3000", "algo.schedule.warmup_steps=400",
    "algo.schedule.online_steps=16000", "algo.schedule.utd=1",
    "eval.every_env_steps=2000", "eval.every_updates=1500", "eval.episodes=20",
]
BC = ["task=widowx_reach", "algo=bc", f"dataset={STORE}", "sim.dynamics=perturbed", f"run_dir={DEMO_DIR / 'bc'}",
      "algo.agent.hidden=[128,128]", "algo.batch_size=128", "algo.schedule.offline_updates=3000",
      "eval.every_updates=1500", "eval.episodes=20", "eval.video=false"]
QUICK = {  # CI: the same path in about a minute
    "collect": ["episodes=4"],
    "bc": ["algo.schedule.offline_updates=60", "eval.every_updates=30", "eval.episodes=2"],
    "finetune": ["algo.schedule.offline_updates=60", "algo.schedule.warmup_steps=40",
                 "algo.schedule.online_steps=160", "eval.every_env_steps=80", "eval.every_updates=30",
                 "eval.episodes=2", "publish_every=40"],
}


def add_parser(verbs) -> None:
    parser = verbs.add_parser("demo", help="collect, pretrain, fine-tune and report on the WidowX twin (make demo)",
                              description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="quick=true", help="quick=true: tiny budgets (CI)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from robot_rl.cli.collect import collect
    from robot_rl.cli.finetune import finetune, resolve
    from robot_rl.cli.train import resolve_run, train

    unknown = [o for o in args.overrides if o.split("=", 1)[0] != "quick"]
    if unknown:
        return report_error(f"robot-rl demo takes only quick=true|false, found {unknown}; for other settings "
                            "run `robot-rl collect` and `robot-rl finetune` yourself")
    quick = any(o.split("=", 1)[1].lower() in ("1", "true", "yes") for o in args.overrides)
    started = time.perf_counter()
    for stale in (STORE, DEMO_DIR / "finetune", DEMO_DIR / "collect", DEMO_DIR / "bc"):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        console.rule("1/4 scripted demonstrations on the WidowX twin")
        status = collect(load_config("collect", COLLECT + (QUICK["collect"] if quick else [])))
        if status == 0:
            console.rule("2/4 Cal-QL pretraining, then WSRL fine-tuning on the perturbed twin")
            status = finetune(resolve(FINETUNE + (QUICK["finetune"] if quick else [])))
        if status == 0:
            console.rule("3/4 behaviour cloning on the same demonstrations, the same number of updates")
            status = train(resolve_run(BC + (QUICK["bc"] if quick else [])))
    except ConfigError as e:
        return report_error(e)
    if status == 0:
        console.rule("4/4 report: fine-tuning beside behaviour cloning")
        report = write_demo_report()
        console.print(report.read_text(), markup=False, highlight=False, soft_wrap=True)
        console.print(f"demo finished in {time.perf_counter() - started:.0f} s; report: {report}", soft_wrap=True)
    return status


def write_demo_report() -> Path:
    """The fine-tuning report again, with BC's final evaluation beside the pretrained and fine-tuned ones."""
    from robot_rl.learner.metrics import read_evaluations
    from robot_rl.learner.report import write_report

    bc = read_evaluations(DEMO_DIR / "bc")[-1]
    name = f"behaviour cloning ({bc['updates']:.0f} updates, same demos)"
    return write_report(DEMO_DIR / "finetune", "wsrl on widowx/reach (twin, sim.dynamics perturbed)", {name: bc})
