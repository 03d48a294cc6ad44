"""Checkpoints: a folder per checkpoint, written under a temporary name and renamed into place, so a
reader (the policy node, ``resume=true``) only ever sees complete ones. Nothing is pickled:

    checkpoints/step_000012345/
        model.safetensors      every weight of the agent (targets and temperature included)
        optimizer.safetensors  Adam moments and steps, one tensor per (optimizer, parameter, field)
        state.json             counters, optimizer hyper-parameters, numpy generator states
        config.yaml            the run's resolved config
        spec.json              the embodiment spec the agent was built for (EmbodimentSpec.to_dict():
                               its observation keys with their shapes, the action), so a policy
                               loads without building the twin (robot_rl.learner.policy.load_agent)
    checkpoints/latest         the name of the newest complete checkpoint
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.learner.remote_checkpoints import cache_folder, fetch_latest, is_remote, publish

LATEST = "latest"
SPEC = "spec.json"


def save_checkpoint(folder: str | os.PathLike, name: str, agent: torch.nn.Module,
                    optimizers: dict[str, torch.optim.Optimizer], state: dict, config_yaml: str, *,
                    spec: EmbodimentSpec, keep: int = 3) -> Path:
    """Write ``folder/name`` atomically, point ``folder/latest`` at it, keep the newest ``keep``. A folder
    that is an object-store URL gets the checkpoint uploaded (robot_rl.learner.remote_checkpoints)."""
    if is_remote(folder):
        local = save_checkpoint(cache_folder(folder), name, agent, optimizers, state, config_yaml, spec=spec, keep=keep)
        return publish(local, folder, keep)
    folder = Path(folder)
    final, tmp = folder / name, folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in agent.state_dict().items()}, tmp / "model.safetensors")
    tensors, groups = _flatten_optimizers(optimizers)
    save_file(tensors, tmp / "optimizer.safetensors")
    state = {**state, "optimizer_param_groups": groups, "torch_rng": torch.get_rng_state().tolist()}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    (tmp / "config.yaml").write_text(config_yaml)
    (tmp / SPEC).write_text(json.dumps(spec.to_dict(), indent=1))
    _fsync_dir(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _write_atomic(folder / LATEST, name)
    for old in sorted(p for p in folder.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    if is_remote(folder):  # a local copy of it
        return fetch_latest(folder)
    pointer = Path(folder) / LATEST
    if not pointer.exists():
        return None
    path = Path(folder) / pointer.read_text().strip()
    return path if (path / "state.json").exists() else None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from itself, a ``checkpoints/`` folder or a run folder (its latest); an
    object-store URL of a checkpoints folder gives a local copy of its latest."""
    if is_remote(path) and (found := fetch_latest(path)) is not None:
        return found
    path = Path(path)
    for candidate in (path, path / "checkpoints"):
        if (candidate / "model.safetensors").exists():
            return candidate
        latest = latest_checkpoint(candidate)
        if latest is not None:
            return latest
    raise FileNotFoundError(f"checkpoint={path}: no checkpoint there (expected a folder with model.safetensors, "
                            "a checkpoints/ folder with a 'latest' file, or a run folder holding one)")


def load_weights(agent: torch.nn.Module, path: str | os.PathLike) -> None:
    agent.load_state_dict(load_file(Path(path) / "model.safetensors"))


def load_checkpoint(path: str | os.PathLike, agent: torch.nn.Module,
                    optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Restore weights, optimizer states and the torch RNG; returns the saved ``state`` dict."""
    path = Path(path)
    load_weights(agent, path)
    state = json.loads((path / "state.json").read_text())
    _restore_optimizers(optimizers, load_file(path / "optimizer.safetensors"), state.pop("optimizer_param_groups"))
    torch.set_rng_state(torch.tensor(state.pop("torch_rng"), dtype=torch.uint8))
    return state


def _flatten_optimizers(optimizers) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, groups = {}, {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        groups[name] = sd["param_groups"]
        for param_id, fields in sd["state"].items():
            for field, value in fields.items():
                tensors[f"{name}/{param_id}/{field}"] = torch.as_tensor(value).detach().contiguous().cpu()
    return tensors, groups


def _restore_optimizers(optimizers, tensors: dict[str, torch.Tensor], groups: dict) -> None:
    for name, opt in optimizers.items():
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            opt_name, param_id, field = key.split("/")
            if opt_name == name:
                state.setdefault(int(param_id), {})[field] = value
        opt.load_state_dict({"state": state, "param_groups": groups[name]})


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    for file in folder.iterdir():
        with open(file, "rb") as f:
            os.fsync(f.fileno())
