"""Hydra configuration for the verbs that run jobs: compose ``robot_rl/configs/<verb>.yaml`` with the
command line's ``key=value`` overrides, resolve its robot and task (:func:`resolve_task`), and keep the
resolved config in the job's run folder."""
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
# `task: null` for the robots `robot-rl collect` records that have no driver in robot_rl.drivers.robot:
# robosuite's Panda Lift, its one task with a scripted expert (robot_rl.sim.robosuite_adapter.EXPERTS).
UNREGISTERED_DEFAULT_TASKS = {"robosuite": "Lift"}


class ConfigError(ValueError):
    pass


errors = Console(stderr=True, soft_wrap=True)


def report_error(err: Exception | str) -> int:
    """Print a bad-input error on stderr (its text verbatim: ``obs_keys=[state]`` is not markup); the
    exit status for bad input, 2."""
    errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
    return 2


def load_config(verb: str, overrides: list[str], *, complete: bool = True) -> DictConfig:
    """The verb's config with ``overrides``, its robot and task resolved (:func:`resolve_task`).
    ``complete=False``: the defaults as written, required keys (``???``) left unset."""
    overrides = [_group_alias(o) for o in overrides]
    try:
        with initialize_config_module("robot_rl.configs", version_base="1.3"):
            cfg = compose(verb, overrides=overrides)
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing and complete:
            raise ConfigError(f"`robot-rl {verb}` needs {', '.join(f'{k}=...' for k in missing)}")
        if complete:
            OmegaConf.resolve(cfg)
            resolve_task(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad override for `robot-rl {verb}`: {e}") from e
    return cfg


def _group_alias(override: str) -> str:
    key, _, value = override.partition("=")
    # `sim.dynamics=perturbed` picks a preset; `sim.dynamics.mass_scale=1.2` sets one knob.
    if key in GROUP_ALIASES and re.fullmatch(r"[\w-]+", value):
        return f"{GROUP_ALIASES[key]}={value}"
    return override


def resolve_task(cfg: DictConfig) -> DictConfig:
    """Robot and task, resolved here for every verb that has both keys (train, finetune, collect, bringup):
    ``task=<robot>_<task>`` (``task=widowx_pick_place``) becomes ``robot=widowx task=pick_place``
    (robot_rl.tasks.split_task), and ``task: null`` the robot's default task (``default_task`` in its
    definition, robot_rl.drivers.robot: widowx reach, franka lift, rc_car goal; robosuite Lift). A given task
    is kept; an unknown robot or task is left for check_config to report with the names it accepts."""
    from robot_rl.drivers.robot import ROBOTS, default_task
    from robot_rl.tasks import split_task

    if "robot" not in cfg or "task" not in cfg:
        return cfg  # eval: the checkpoint's robot
    split_task(cfg)
    if cfg.task is None and cfg.robot in ROBOTS:
        cfg.task = default_task(cfg.robot)
    elif cfg.task is None and cfg.robot in UNREGISTERED_DEFAULT_TASKS:
        cfg.task = UNREGISTERED_DEFAULT_TASKS[cfg.robot]
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
