"""A verb's whole config, checked before the verb writes anything (its run folder, a store): the type of
every overridden key against the verb's defaults, ranges and choices, robot and task names in either
form (``task=widowx_reach`` or ``robot=widowx task=reach``, the same in every verb), and for training the
dataset against the task's spec. Every problem is reported at once, each naming the key, what was
expected, what was found and the fix."""
from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from robot_rl.cli.config import ConfigError, load_config

GROUP_KEYS = ("algo", "sim.dynamics", "sim/dynamics")
_ABSENT = object()

# key: (kind, lowest, highest, may be null); kind "int" or "number"; None: no bound.
TRAIN_RANGES = {
    "seed": ("int", 0, None, False), "num_envs": ("int", 1, None, False), "threads": ("int", 1, None, True),
    "log_every": ("int", 1, None, False), "max_steps": ("int", 1, None, True), "demos": ("int", 1, None, True),
    "eval.every_env_steps": ("int", 0, None, False), "eval.every_updates": ("int", 0, None, False),
    "eval.episodes": ("int", 1, None, False), "eval.seed": ("int", 0, None, False),
    "keep_checkpoints": ("int", 1, None, False), "publish_every": ("int", 1, None, False),
    "actor_poll_s": ("number", 1e-3, None, False), "algo.batch_size": ("int", 1, None, False),
    "algo.discount": ("number", 1e-6, 1.0, False), "algo.n_step": ("int", 1, None, False),
    "takeover_budget": ("int", 0, None, True), "hil_ratio": ("number", 0, 0.99, False),
}
FINETUNE_RANGES = {**TRAIN_RANGES, "max_lag": ("int", 1, None, False), "rate": ("number", 1e-3, None, True),
                   "camera_fps": ("number", 1e-3, None, False), "grace_s": ("number", 0, None, False)}
COLLECT_RANGES = {"episodes": ("int", 1, None, False), "noise": ("number", 0, None, False),
                  "seed": ("int", 0, None, False), "max_steps": ("int", 1, None, True)}
EVAL_RANGES = {"episodes": ("int", 1, None, False), "video_episodes": ("int", 1, None, False),
               "seed": ("int", 0, None, False)}
BRINGUP_RANGES = {"rate": ("number", 1e-3, None, True), "camera_fps": ("number", 1e-3, None, False),
                  "episodes": ("int", 0, None, False), "steps": ("int", 1, None, True),
                  "execute_steps": ("int", 1, None, True), "seed": ("int", 0, None, False),
                  "grace_s": ("number", 0, None, False)}
CHOICES = {"reward_type": ("dense", "sparse"), "actor": ("internal", "external"), "codec": ("zstd", "lz4", "raw", "jpeg")}


def _backends() -> tuple[str, ...]:
    """The twin and every registered robot's hardware backends (robot_rl.drivers.robot)."""
    from robot_rl.drivers.robot import ROBOTS, TWIN, robot_definition

    return (TWIN, *dict.fromkeys(b for robot in ROBOTS for b in robot_definition(robot).hardware_backends))


def check_config(verb: str, overrides: list[str], cfg: DictConfig, *, robots_extra: tuple[str, ...] = (),
                 saved: bool = False) -> None:
    """Raise ConfigError listing every problem of ``cfg`` (``saved``: a run's saved config with
    ``overrides`` on top, whose types are the saved ones and need no comparing with the defaults)."""
    problems = [] if saved else _type_problems(verb, overrides, cfg)
    ranges = {"train": TRAIN_RANGES, "finetune": FINETUNE_RANGES, "collect": COLLECT_RANGES, "eval": EVAL_RANGES,
              "bringup": BRINGUP_RANGES}[verb]
    typed = {p.split("=", 1)[0] for p in problems}
    problems += [p for key, rule in ranges.items() if key not in typed and (p := _range_problem(cfg, key, *rule))]
    choices = {**CHOICES, "backend": _backends()}
    problems += [p for key, allowed in choices.items() if (p := _choice_problem(cfg, key, allowed))]
    problems += _schedule_problems(cfg)
    problems += _image_size_problems(cfg)
    if verb != "eval" and not problems:
        problems += _task_problems(cfg, robots_extra)
    if verb in ("train", "finetune") and not problems and cfg.get("dataset") and not saved:
        problems += _dataset_problems(cfg)
    if problems:
        raise ConfigError("\n".join(["bad config, nothing was written:", *(f"  - {p}" for p in problems)]))


def _type_problems(verb: str, overrides: list[str], cfg: DictConfig) -> list[str]:
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o]
    groups = [o for o, key in zip(overrides, keys) if key in GROUP_KEYS]
    defaults = load_config(verb, groups, complete=False)
    problems = []
    for key in keys:
        default, found = OmegaConf.select(defaults, key, default=_ABSENT), OmegaConf.select(cfg, key, default=_ABSENT)
        if key in GROUP_KEYS or default is _ABSENT or found is _ABSENT or default is None or found is None:
            continue
        expected = _kind(default)
        if expected != _kind(found) and not (expected == "a number" and _kind(found) == "an integer"):
            problems.append(f"{key}={_show(found)}: expected {expected} (the default is {_show(default)}); "
                            f"give e.g. {key}={_show(default)}")
    return problems


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, (list, ListConfig)):
        return "a list such as [a, b]"
    if isinstance(value, (dict, DictConfig)):
        return "a mapping such as {a: b}"
    return "text"


def _show(value) -> str:
    if isinstance(value, (ListConfig, DictConfig)):
        value = OmegaConf.to_container(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _range_problem(cfg, key: str, kind: str, low, high, nullable: bool) -> str | None:
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    if value is _ABSENT or (value is None and nullable):
        return None
    bounds = " and ".join(b for b in (f">= {low}" if low is not None else "", f"<= {high}" if high is not None else "") if b)
    expected = f"{'an integer' if kind == 'int' else 'a number'}{' ' + bounds if bounds else ''}" \
               f"{' (or null)' if nullable else ''}"
    numeric = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
    if isinstance(value, bool) or not numeric or (low is not None and value < low) or (high is not None and value > high):
        return f"{key}={_show(value)}: expected {expected}"
    return None


def _choice_problem(cfg, key: str, allowed: tuple[str, ...]) -> str | None:
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    if value is _ABSENT or value in allowed:
        return None
    return f"{key}={_show(value)}: expected one of {', '.join(allowed)}"


def _schedule_problems(cfg) -> list[str]:
    schedule = OmegaConf.select(cfg, "algo.schedule", default=None)
    if not isinstance(schedule, DictConfig):
        return []
    ratios = [k for k in schedule if k.endswith("ratio")]  # fractions of a batch; the rest count steps
    return [f"algo.schedule.{k}={_show(v)}: expected " + ("a fraction from 0 to 1" if k in ratios else "an integer >= 0")
            for k, v in schedule.items()
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (k in ratios and v > 1)
            or (k not in ratios and not isinstance(v, int))]


def _image_size_problems(cfg) -> list[str]:
    size = cfg.get("image_size", _ABSENT)
    if size is _ABSENT:
        return []
    if not (isinstance(size, ListConfig) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    and v > 0 for v in size)):
        return [f"image_size={_show(size)}: expected [height, width] in pixels, e.g. image_size=[128,128]"]
    return []


def _task_problems(cfg, robots_extra: tuple[str, ...]) -> list[str]:
    """Robot and task, in either form (split_task has already turned widowx_reach into the two)."""
    from robot_rl.sim.specs import task_facts

    if cfg.robot in robots_extra:
        return []
    try:
        task_facts(cfg.robot, cfg.task)
    except ValueError as e:
        return [f"{e} (or robot and task in one: task=<robot>_<task>, e.g. task=widowx_reach)"]
    return []


def _dataset_problems(cfg) -> list[str]:
    from robot_rl.datasets import StoreError, TrajectoryReader
    from robot_rl.learner.replay import check_dataset
    from robot_rl.sim.specs import embodiment_spec

    try:
        found = TrajectoryReader(cfg.dataset).spec
        expected = embodiment_spec(cfg.robot, cfg.task, tuple(cfg.cameras), tuple(cfg.image_size))
        check_dataset(found, expected, (*cfg.obs_keys, *cfg.cameras), cfg.dataset)
    except (StoreError, ValueError) as e:
        return [str(e)]
    return []

