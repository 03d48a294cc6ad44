"""``robot-rl finetune key=value ...``: pretrain offline, then fine-tune online on the robot (or its twin).

    robot-rl finetune robot=widowx task=reach algo=wsrl dataset=data/wx.zarr backend=twin
    robot-rl finetune ... backend=twin realtime=false       # the twin as fast as the CPU allows, no ROS
    robot-rl finetune role=learner resume=true run_dir=runs/finetune/<run>   # restart the learner only
    robot-rl finetune role=actor run_dir=runs/finetune/<run>                 # restart the actor only

Two sides, separate processes, linked only by the run folder (so they may run on two machines that
mount it): the *learner* (``robot-rl train actor=external``) pretrains, then consumes the episodes in
``online.zarr`` and writes checkpoints; the *actor* acts with the newest checkpoint and appends episodes.
The actor is the robot's ROS 2 graph (robot_rl.launch.graphs.finetune_actor: driver, cameras, policy
node, recorder), or with ``realtime=false`` on the twin one process stepping it without ROS
(robot_rl.learner.actor). On the twin each episode resets itself and the twin task gives the reward; on
hardware the operator starts and ends each episode, labelling successes (reward 1 on the last step),
with a teleop device's buttons (``teleop=keyboard``; it sends no motion) or the recorder's services.
``takeover=true``: the device also takes over motion while held (on the twin, ``teleop=scripted``: the
task's expert, when the policy strays); ``reward_classifier=PATH`` (hardware): a learned reward.

The job ends when the learner has run every phase; it then writes ``run_dir/report/`` (success against
steps for the pretrained-only and the fine-tuned policy, the table, a rollout video, the config).
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from rich.console import Console

from robot_rl.cli.checks import check_config
from robot_rl.cli.config import ConfigError, add_verb, report_error, save_run_config
from robot_rl.cli.train import resolve_run
from robot_rl.datasets import StoreError

console = Console()
ROLES = ("all", "learner", "actor")


def add_parser(verbs) -> None:
    add_verb(verbs, "finetune", run, "pretrain offline, then fine-tune on the robot or its twin (learner + actor)",
             __doc__.split("\n\n")[0], "task=widowx_reach algo=wsrl dataset=data/reach.zarr backend=twin realtime=false")


def run(args) -> int:
    try:
        return finetune(resolve(args.overrides))
    except (ConfigError, StoreError, ValueError, FileNotFoundError) as e:
        return report_error(e)


def resolve(overrides: list[str]):
    """A new run's config; with resume=true or role=actor, the saved config of ``run_dir``."""
    actor_only = any(o.replace(" ", "") == "role=actor" for o in overrides)
    cfg = resolve_run(overrides, "finetune", saved_config=actor_only)  # robot and task resolved
    if cfg.role not in ROLES:
        raise ConfigError(f"role={cfg.role!r}: expected one of {', '.join(ROLES)}")
    if cfg.actor != "external":
        raise ConfigError("actor=external is what finetune runs (the actor is its own process); "
                          "`robot-rl train` steps the twin in the learner's process")
    if cfg.get("takeover") and not cfg.realtime:
        raise ConfigError("takeover=true: the operator takes over in the ROS graph (realtime=true); the fast twin actor "
                          "(realtime=false) has no operator: give realtime=true, or `robot-rl train takeover=true`")
    if not cfg.realtime and cfg.backend != "twin":
        raise ConfigError("realtime=false steps the twin faster than real time: it needs backend=twin")
    check_actors(cfg)
    if cfg.backend != "twin" and "task_state" in cfg.obs_keys:
        raise ConfigError(f"backend={cfg.backend}: obs_keys={list(cfg.obs_keys)} reads task_state, the twin's "
                          "privileged object and goal state, which hardware does not have: give obs_keys=[state] "
                          "and cameras=[front]")
    check_config("finetune", overrides, cfg, saved=bool(cfg.resume) or actor_only)
    return cfg


def check_actors(cfg) -> None:
    actors = cfg.actors
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ConfigError(f"actors={actors!r}: expected a positive number of twin actors (1: one process, no Ray)")
    if cfg.object_store and (cfg.realtime or cfg.backend != "twin"):
        raise ConfigError(f"object_store={cfg.object_store}: the run's stores and checkpoints on object storage are for "
                          f"the fast twin actors (the ROS graph reads the run folder); give backend=twin realtime=false "
                          f"(found backend={cfg.backend} realtime={cfg.realtime}), or object_store=null")
    if on_ray(cfg) and (cfg.realtime or cfg.backend != "twin"):
        raise ConfigError(f"actors={actors}, ray_address={cfg.ray_address}: several actors are fast twin actors on "
                          f"Ray; give backend=twin realtime=false (found backend={cfg.backend} realtime={cfg.realtime})")


def on_ray(cfg) -> bool:
    """Whether the actors run on Ray (robot_rl.learner.ray_actors): more than one, or a cluster named."""
    return cfg.actors > 1 or bool(cfg.ray_address)


def finetune(cfg) -> int:
    from robot_rl.launch.supervisor import run_graph

    run_dir = Path(cfg.run_dir)
    if cfg.role != "actor":
        save_run_config(cfg)
    episode_steps = prepare_online_store(cfg)
    processes = []
    if cfg.role in ("all", "learner"):
        processes.append(learner_process(run_dir))
    if cfg.role in ("all", "actor"):
        processes += actor_processes(cfg, run_dir, episode_steps)
    status = run_graph(processes, run_dir / "logs", grace_s=cfg.grace_s, echo=job_log(run_dir / "logs", cfg.role))
    if status == 0 and cfg.role != "actor":
        from robot_rl.learner.report import write_report

        report = write_report(run_dir, f"{cfg.algo.name} on {cfg.robot}/{cfg.task} ({cfg.backend}, "
                                       f"sim.dynamics {dynamics_name(cfg)})")
        console.print(report.read_text(), markup=False, highlight=False, soft_wrap=True)
        console.print(f"report: {report}", soft_wrap=True)
    return status


def job_log(log_dir: Path, role: str):
    """Print a supervisor line and keep it in ``logs/finetune_<role>.log`` too (the processes' own output
    is in ``logs/<process>.log``): which process died, and how, is on disk even if this terminal is gone."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"finetune_{role}.log"

    def echo(line: str) -> None:
        print(line, flush=True)
        with open(path, "a") as log:
            log.write(line + "\n")
    return echo


def prepare_online_store(cfg) -> int:
    """Create the run's online store with the spec its recorder writes (before either side opens it, so
    neither races the other to create it); returns the episode length in actions."""
    from robot_rl.learner.replay import open_for_reading
    from robot_rl.learner.run_storage import shared_root
    from robot_rl.learner.trainer import online_store
    from robot_rl.sim.specs import embodiment_spec, task_facts

    # the hardware recorder has no twin task state
    spec = embodiment_spec(cfg.robot, cfg.task if cfg.backend == "twin" else None, tuple(cfg.cameras),
                           tuple(cfg.image_size))
    if cfg.realtime:  # the ROS graph's recorder marks the operator's steps (robot_rl.drivers.takeover)
        spec = spec.with_optional("intervention")
    open_for_reading(online_store(shared_root(cfg, cfg.run_dir)), spec, (*cfg.obs_keys, *cfg.cameras))
    return int(cfg.max_steps or task_facts(cfg.robot, cfg.task).max_steps)


def learner_process(run_dir: Path):
    from robot_rl.launch.graphs import Process

    # `robot-rl train` on this run's saved config; resume=true continues from its last checkpoint, if any.
    return Process("learner", "robot_rl.cli.main", ("train", "resume=true", f"run_dir={run_dir}"), completes_job=True)


def actor_processes(cfg, run_dir: Path, episode_steps: int) -> list:
    from robot_rl.launch.graphs import Options, Process, finetune_actor
    from robot_rl.learner.trainer import online_store

    if on_ray(cfg):
        return [ray_actors_process(cfg, run_dir)]
    # With role=actor the actor's own graph ends when the learner has finished (the fast actor exits, the ROS
    # graph's heartbeat process does); with role=all the learner's exit ends the graph, so the actor waits for it.
    alone = cfg.role == "actor"
    if not cfg.realtime:
        return [Process("actor", "robot_rl.learner.actor", ("--run-dir", str(run_dir), "--max-lag", str(cfg.max_lag),
                                                            *object_store_args(cfg),
                                                            *(() if alone else ("--keep-running-when-finished",))),
                        completes_job=alone)]
    heartbeat = Process("heartbeat", "robot_rl.learner.heartbeat",
                        ("--run-dir", str(run_dir), *(("--exit-when-finished",) if alone else ())), completes_job=alone)
    options = Options(robot=cfg.robot, backend=cfg.backend, task=cfg.task, cameras=tuple(cfg.cameras),
                      camera_devices=dict(cfg.camera_devices), camera_fps=cfg.camera_fps, port=cfg.port, rate=cfg.rate,
                      teleop=cfg.teleop, checkpoint=str(run_dir), out=str(online_store(run_dir)), steps=episode_steps,
                      seed=cfg.seed, dynamics=dynamics_name(cfg), takeover=bool(cfg.get("takeover", False)),
                      takeover_budget=cfg.get("takeover_budget"), reward_classifier=cfg.get("reward_classifier"))
    if options.dynamics == "custom":
        raise ConfigError("the ROS twin takes a sim.dynamics preset (nominal, noisy, perturbed), not single knobs; "
                          "use a preset, or realtime=false")
    return [*finetune_actor(options), heartbeat]


def ray_actors_process(cfg, run_dir: Path):
    """``actors`` fast twin actors on Ray, each with its own store under ``run_dir/online/``."""
    from robot_rl.launch.graphs import Process

    alone = cfg.role == "actor"  # as the single fast actor: it ends a role=actor graph, waits in role=all
    args = ("--run-dir", str(run_dir), "--actors", str(cfg.actors), "--max-lag", str(cfg.max_lag),
            "--max-restarts", str(cfg.actor_max_restarts), *(("--ray-address", str(cfg.ray_address)) if cfg.ray_address else ()),
            *object_store_args(cfg), *(() if alone else ("--keep-running-when-finished",)))
    return Process("actors", "robot_rl.learner.ray_actors", args, completes_job=alone)


def object_store_args(cfg) -> tuple[str, ...]:
    return ("--object-store", str(cfg.object_store)) if cfg.object_store else ()


def dynamics_name(cfg) -> str:
    """The preset name of the run's dynamics when its knobs equal one (else "custom")."""
    from robot_rl.sim.dynamics import Dynamics

    knobs = Dynamics.from_dict(OmegaConf.to_container(cfg.sim.dynamics))
    for name in ("nominal", "noisy", "perturbed"):
        if Dynamics.preset(name) == knobs:
            return name
    return "custom"
