"""``robot-rl eval checkpoint=<path> key=value ...``: success rate and return of a trained policy on a
twin, and an MP4 of its first episodes.

    robot-rl eval checkpoint=runs/train/<run> episodes=20 video=true sim.dynamics=perturbed
"""
from __future__ import annotations

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from robot_rl.cli.checks import check_config
from robot_rl.cli.config import ConfigError, add_verb, load_config, report_error, save_run_config

console = Console()


def add_parser(verbs) -> None:
    add_verb(verbs, "eval", run, 'evaluate a trained policy on a twin (success rate, return, MP4)', __doc__.split("\n\n")[0],
             'checkpoint=runs/train/<run> episodes=20 video=true sim.dynamics=perturbed')


def run(args) -> int:
    try:
        cfg = load_config("eval", args.overrides)
        check_config("eval", args.overrides, cfg)
        return evaluate_checkpoint(cfg)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        return report_error(e)


def evaluate_checkpoint(cfg) -> int:
    from robot_rl.learner.policy import checkpoint_twin, load_agent, twin_config
    from robot_rl.learner.rollout import evaluate
    from robot_rl.learner.video import write_mp4

    loaded = load_agent(cfg.checkpoint)
    trained = twin_config(loaded, cfg.task, OmegaConf.to_container(cfg.sim.dynamics))
    env = checkpoint_twin(loaded, trained)
    run_dir = save_run_config(cfg)
    policy = lambda obs: loaded.agent.act(obs, deterministic=cfg.deterministic)  # noqa: E731
    frames = [] if cfg.video else None
    result = evaluate(policy, env, cfg.episodes, cfg.seed, frames, video_episodes=cfg.video_episodes)
    table = Table(title=f"{loaded.folder} on {trained.robot}/{trained.task}", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("success rate", f"{result['success_rate']:.0%} over {cfg.episodes} episodes")
    table.add_row("return", f"{result['return']:.2f}")
    table.add_row("episode length", f"{result['episode_length']:.1f} steps")
    if frames:
        video = write_mp4(run_dir / "rollouts.mp4", frames, env.unwrapped.control_rate_hz)
        table.add_row("video", str(video))
    console.print(table)
    env.close()
    return 0
