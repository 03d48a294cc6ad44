"""A trained policy from a checkpoint folder, built from the checkpoint alone: its config (config.yaml,
read once per load) and its embodiment spec (spec.json) give the agent, safetensors the weights. Nothing
here builds a twin or imports MuJoCo; a caller that also needs the twin (``robot-rl eval``, the fast
actor) builds it with ``checkpoint_twin``:

    policy = load_agent("runs/train/<run>")   # .agent (eval mode), .config, .spec, .folder, .keys
    env = checkpoint_twin(policy, twin_config(policy, task="widowx_pick_place", dynamics=...))

Checkpoints written before checkpoints carried spec.json are refused with the fix: run
``python -m robot_rl.learner.policy add-spec <run, checkpoints/ or checkpoint folder>`` once, which builds
the run's twin from its config and writes the spec it was trained on next to each of its checkpoints.
(No silent fallback: it would build the twin on every load, the cost this module exists to avoid.)
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.learner.checkpoint import SPEC, load_weights, resolve_checkpoint
from robot_rl.learner.trainer import build_agent, make_twin
from robot_rl.tasks import split_task


@dataclass(frozen=True)
class CheckpointPolicy:
    agent: object          # the algorithm's Agent, in eval mode
    config: DictConfig     # the run's resolved config (robot and task split)
    spec: EmbodimentSpec   # the spec the agent was built for
    folder: Path           # the checkpoint folder

    @property
    def keys(self) -> tuple[str, ...]:
        """The observation keys the agent reads: its state keys, then its cameras."""
        return (*self.config.obs_keys, *self.config.cameras)


def checkpoint_config(folder: Path) -> DictConfig:
    """The resolved training config saved in a checkpoint folder (robot and task split)."""
    return split_task(OmegaConf.load(Path(folder) / "config.yaml"))


def read_spec(folder: Path) -> EmbodimentSpec:
    path = Path(folder) / SPEC
    if not path.exists():
        raise FileNotFoundError(
            f"checkpoint={folder}: no {SPEC} (it was written before checkpoints carried their spec); add it once "
            f"with `python -m robot_rl.learner.policy add-spec {folder}`")
    return EmbodimentSpec.from_dict(json.loads(path.read_text()))


def load_agent(checkpoint: str | os.PathLike) -> CheckpointPolicy:
    """The agent of a checkpoint, a ``checkpoints/`` folder or a run folder (its latest), with its weights."""
    folder = resolve_checkpoint(checkpoint)
    config, spec = checkpoint_config(folder), read_spec(folder)
    agent = build_agent(config, spec)
    load_weights(agent, folder)
    return CheckpointPolicy(agent.eval(), config, spec, folder)


def twin_config(policy: CheckpointPolicy, task: str | None = None, dynamics: dict | None = None) -> DictConfig:
    """The checkpoint's config for a twin of its robot and task (or ``task`` on the same robot), with
    ``dynamics`` if given."""
    cfg = split_task(OmegaConf.merge(policy.config, {"task": task or policy.config.task}))
    if cfg.robot != policy.config.robot:
        raise ValueError(f"task={task!r} is for robot {cfg.robot!r}, the checkpoint drives {policy.config.robot!r}")
    if dynamics is not None:
        cfg.sim.dynamics = dynamics
    return cfg


def checkpoint_twin(policy: CheckpointPolicy, cfg: DictConfig | None = None):
    """The twin of ``cfg`` (default: the checkpoint's own; see twin_config), refused when it observes a
    key the agent reads in another shape than the agent was trained on."""
    cfg = twin_config(policy) if cfg is None else cfg
    env = make_twin(cfg)
    trained, found = policy.spec.keys(), env.unwrapped.embodiment.keys()
    for key in (*policy.keys, "action"):
        if key not in found or found[key].shape != trained[key].shape:
            env.close()
            raise ValueError(f"task={cfg.robot}_{cfg.task}: key {key!r} expected shape {trained[key].shape} (what "
                             f"checkpoint={policy.folder} was trained on), the twin gives "
                             f"{found[key].shape if key in found else 'no such key'}; use a task with the same "
                             "observations")
    return env


def load_policy(checkpoint: str | os.PathLike, task: str | None = None, dynamics: dict | None = None):
    """(agent in eval mode, a twin for it, the twin's config, the checkpoint folder) for callers that act on
    the twin (the fast actor): load_agent, then checkpoint_twin."""
    policy = load_agent(checkpoint)
    cfg = twin_config(policy, task, dynamics)
    return policy.agent, checkpoint_twin(policy, cfg), cfg, policy.folder


def add_spec(path: str | os.PathLike) -> list[Path]:
    """Write spec.json into every checkpoint folder at or under ``path`` (a run, checkpoints/ or checkpoint
    folder) that lacks one: the spec of the twin its config builds, which training built the agent from.
    Returns the folders written."""
    path = Path(path)
    candidates = [path, *path.glob("*"), *(path / "checkpoints").glob("*")]
    folders = [f for f in candidates if (f / "model.safetensors").exists() and not f.name.startswith(".")]
    if not folders:
        resolve_checkpoint(path)  # raises, naming what it expected
    written = []
    for folder in folders:
        if (folder / SPEC).exists():
            continue
        env = make_twin(checkpoint_config(folder))
        try:
            tmp = folder / f".{SPEC}.tmp"
            tmp.write_text(json.dumps(env.unwrapped.embodiment.to_dict(), indent=1))
            os.replace(tmp, folder / SPEC)
        finally:
            env.close()
        written.append(folder)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.learner.policy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("add-spec",))
    parser.add_argument("path", help="a run, checkpoints/ or checkpoint folder")
    args = parser.parse_args(argv)
    written = add_spec(args.path)
    print(f"{SPEC} written to {len(written)} checkpoint(s)" + "".join(f"\n  {f}" for f in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
