"""Hydra configuration for the verbs that run jobs: compose ``robot_rl/configs/<verb>.yaml`` with the
command line's ``key=value`` overrides, and keep the resolved config in the job's run folder."""
from __future__ import annotations

import re
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.markup import escape

# Config groups that users also address with a dot, as in `sim.dynamics=perturbed`.
GROUP_ALIASES = {"sim.dynamics": "sim/dynamics"}


class ConfigError(ValueError):
    pass


errors = Console(stderr=True, soft_wrap=True)


def report_error(err: Exception | str) -> int:
    """Print a bad-input error on stderr (its text verbatim: ``obs_keys=[state]`` is not markup); the
    exit status for bad input, 2."""
    errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
    return 2


def load_config(verb: str, overrides: list[str], *, complete: bool = True) -> DictConfig:
    """``complete=False``: the defaults, required keys (``???``) left unset."""
    overrides = [_group_alias(o) for o in overrides]
    try:
        with initialize_config_module("robot_rl.configs", version_base="1.3"):
            cfg = compose(verb, overrides=overrides)
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing and complete:
            raise ConfigError(f"`robot-rl {verb}` needs {', '.join(f'{k}=...' for k in missing)}")
        if complete:
            OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad override for `robot-rl {verb}`: {e}") from e
    return cfg


def _group_alias(override: str) -> str:
    key, _, value = override.partition("=")
    # `sim.dynamics=perturbed` picks a preset; `sim.dynamics.mass_scale=1.2` sets one knob.
    if key in GROUP_ALIASES and re.fullmatch(r"[\w-]+", value):
        return f"{GROUP_ALIASES[key]}={value}"
    return override


def with_default_task(cfg: DictConfig) -> DictConfig:
    """``task: null`` becomes the robot's default task (robot_rl.drivers.robot.default_task); an unknown
    robot is left for check_config to report."""
    from robot_rl.drivers.robot import ROBOTS, default_task

    if cfg.task is None and cfg.robot in ROBOTS:
        cfg.task = default_task(cfg.robot)
    return cfg


def save_run_config(cfg: DictConfig) -> Path:
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return run_dir


def add_verb(verbs, name: str, run, help: str, description: str, example: str) -> None:
    """An argparse sub-command whose arguments are Hydra ``key=value`` overrides of ``configs/<name>.yaml``."""
    parser = verbs.add_parser(name, help=help, description=description)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"config overrides (robot_rl/configs/{name}.yaml), e.g. {example}")
    parser.set_defaults(run=run)
