"""robomimic HDF5 (robosuite demonstrations), both ways, in robomimic's documented layout::

    data/                 attrs: total (steps), env_args (JSON: env_name, type, env_kwargs)
      demo_<i>/           attrs: num_samples
        obs/<key>         (N, ...) one dataset per observation key; cameras uint8 (N, H, W, 3)
        next_obs/<key>    obs shifted by one step, the last repeated (here: an HDF5 virtual dataset
                          over obs/<key>, so it costs no space)
        actions (N, A)    rewards (N,)    dones (N,) int64: 1 where the episode terminated
        states (N, S)     simulator states (robosuite; imported as the key ``sim_state``)
    mask/train            the demo names

Besides that layout an export keeps what robomimic has no place for, so a store -> HDF5 -> store round
trip is bit-exact: ``truncated`` and ``timestamps`` per demo, the episode info (JSON) in each demo's
``robot_rl_info`` attribute and the embodiment spec (JSON) in ``data``'s ``robot_rl_spec`` attribute.
"""
from __future__ import annotations

import json
import re

import numpy as np

from robot_rl.datasets.errors import SpecMismatchError, StoreError
from robot_rl.datasets.formats.common import (
    STEPS_PER_READ,
    Progress,
    episode_blocks,
    episode_kwargs,
    require,
    staged_import,
    staged_output,
)
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.spec import CameraSpec, EmbodimentSpec, KeySpec

GYM_ENV_TYPE = 2  # robomimic's EnvType.GYM_TYPE; robosuite files say 1
STEP_DATASETS = ("actions", "rewards", "dones", "truncated", "timestamps", "states")
SIM_STATE_KEY = "sim_state"


def export_robomimic(src, out, *, overwrite: bool = False, compression: str | None = "lzf",
                     progress: Progress | None = None) -> int:
    """Write every committed episode of the store ``src`` as a robomimic HDF5 file ``out``. Returns
    the number of demos. ``compression`` (h5py's: lzf, gzip or None) applies to every dataset."""
    h5py = require("h5py")
    reader = TrajectoryReader(src)
    spec = reader.spec
    lengths = np.diff(np.concatenate([[0], reader.episode_ends])).astype(int)
    done = 0
    with staged_output(out, overwrite) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        names = []
        for index, n in enumerate(lengths.tolist()):
            name = f"demo_{index}"
            names.append(name)
            demo = data.create_group(name)
            demo.attrs["num_samples"] = n
            demo.attrs["robot_rl_info"] = json.dumps(reader.episode_info(index))
            targets = {key: _dataset(demo, f"obs/{key}", n, s, compression, key in spec.cameras)
                       for key, s in spec.keys().items() if key in spec.obs_keys}
            targets["action"] = _dataset(demo, "actions", n, spec.action, compression)
            targets["reward"] = _dataset(demo, "rewards", n, KeySpec((), "float32"), compression)
            targets["terminated"] = _dataset(demo, "dones", n, KeySpec((), "int64"), compression)
            targets["truncated"] = _dataset(demo, "truncated", n, KeySpec((), "bool"), compression)
            targets["timestamp"] = _dataset(demo, "timestamps", n, KeySpec((), "float64"), compression)
            row = 0
            for block in episode_blocks(reader, index):
                rows = len(block["timestamp"])
                for key, target in targets.items():
                    target[row:row + rows] = block[key]
                row += rows
                done += rows
                if progress:
                    progress(done, reader.num_steps)
            for key in spec.obs_keys:
                _next_obs(h5py, demo, key)
        data.attrs["total"] = int(lengths.sum())
        data.attrs["env_args"] = json.dumps({"env_name": spec.name, "type": GYM_ENV_TYPE,
                                             "env_kwargs": {"control_rate_hz": spec.control_rate_hz}})
        data.attrs["robot_rl_spec"] = json.dumps(spec.to_dict())
        f.create_dataset("mask/train", data=np.array(names, dtype="S"))
    return len(lengths)


def _dataset(group, path: str, n: int, spec: KeySpec, compression, image: bool = False):
    chunks = (1, *spec.shape) if image else (min(max(n, 1), STEPS_PER_READ * 4), *spec.shape)
    return group.create_dataset(path, shape=(n, *spec.shape), dtype=spec.dtype, chunks=chunks,
                                compression=compression)


def _next_obs(h5py, demo, key: str) -> None:
    """next_obs/<key> as a view of obs/<key> one step ahead, the last step repeated."""
    source = demo[f"obs/{key}"]
    n = source.shape[0]
    layout = h5py.VirtualLayout(shape=source.shape, dtype=source.dtype)
    whole = h5py.VirtualSource(".", source.name, shape=source.shape)
    if n > 1:
        layout[: n - 1] = whole[1:]
    layout[n - 1] = whole[n - 1]
    demo.create_virtual_dataset(f"next_obs/{key}", layout)


def import_robomimic(path, dst, *, overwrite: bool = False, instruction: str = "", source: str = "teleop",
                     control_rate_hz: float | None = None, camera_codec: str = "zstd",
                     ignore: tuple[str, ...] = (), progress: Progress | None = None) -> int:
    """Import every demo of the robomimic file ``path`` into the store ``dst`` (created, or appended to
    when it holds the same spec). A file exported by this package comes back bit-exact; another one
    (robosuite's) gets a spec built from its first demo: obs datasets uint8 (N, H, W, 3) become
    cameras, the others state keys, ``states`` the key ``sim_state``; ``ignore`` names datasets (or
    ``obs/<key>``) to leave out. Returns the number of episodes imported."""
    h5py = require("h5py")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise StoreError(f"{path}: not a readable HDF5 file ({e}); a truncated download or copy? "
                         "fetch it again") from e
    with f:
        if "data" not in f or not any(_demo_number(k) is not None for k in f["data"]):
            raise StoreError(f"{path}: no data/demo_<i> groups, so not a robomimic dataset")
        data = f["data"]
        demos = sorted((k for k in data if _demo_number(k) is not None), key=_demo_number)
        env_args = json.loads(data.attrs.get("env_args", "{}"))
        if "robot_rl_spec" in data.attrs:
            spec, exported = EmbodimentSpec.from_dict(json.loads(data.attrs["robot_rl_spec"])), True
        else:
            spec, exported = _infer_spec(data[demos[0]], env_args, control_rate_hz, camera_codec, ignore, path), False
        total = 0
        for name in demos:
            total += _check_demo(data[name], name, spec, exported, ignore, path)
        done = 0
        with staged_import(dst, spec, overwrite=overwrite) as writer:
            for name in demos:
                demo = data[name]
                if exported:
                    info, success = episode_kwargs(json.loads(demo.attrs["robot_rl_info"]))
                else:
                    info, success = {"instruction": instruction, "source": source, "robomimic_demo": name,
                                     "robomimic_env": env_args.get("env_name", "")}, None
                episode = writer.new_episode(**info)
                n = demo["actions"].shape[0]
                for first in range(0, n, STEPS_PER_READ):
                    rows = _read_rows(demo, spec, exported, first, min(first + STEPS_PER_READ, n), path, name)
                    for t in range(len(rows["action"])):
                        episode.add({key: values[t] for key, values in rows.items()})
                    done += len(rows["action"])
                    if progress:
                        progress(done, total)
                episode.commit(success=success)
    return len(demos)


def _demo_number(name: str) -> int | None:
    match = re.fullmatch(r"demo_(\d+)", name)
    return int(match.group(1)) if match else None


def _infer_spec(demo, env_args: dict, control_rate_hz, camera_codec: str, ignore, path) -> EmbodimentSpec:
    rate = control_rate_hz or env_args.get("env_kwargs", {}).get("control_freq")
    if not rate:
        raise SpecMismatchError(f"{path}: the control rate is not in env_args (env_kwargs.control_freq): "
                                "pass --fps")
    state, cameras = {}, {}
    for key, ds in demo["obs"].items():
        if f"obs/{key}" in ignore:
            continue
        if ds.dtype.kind not in "biuf":
            raise SpecMismatchError(f"{path}: obs/{key} has dtype {ds.dtype}, which the store cannot hold; "
                                    f"pass --ignore obs/{key} to leave it out")
        if ds.dtype == np.uint8 and ds.ndim == 4 and ds.shape[-1] == 3:
            cameras[key] = CameraSpec(ds.shape[1], ds.shape[2], codec=camera_codec)
        else:
            state[key] = KeySpec(ds.shape[1:], ds.dtype.name)
    if "states" in demo and "states" not in ignore:
        state[SIM_STATE_KEY] = KeySpec(demo["states"].shape[1:], demo["states"].dtype.name, "mujoco state")
    actions = demo["actions"]
    return EmbodimentSpec(name=env_args.get("env_name") or "robomimic", control_rate_hz=float(rate),
                          action=KeySpec(actions.shape[1:], actions.dtype.name), state=state, cameras=cameras)


def _check_demo(demo, name: str, spec: EmbodimentSpec, exported: bool, ignore, path) -> int:
    """The demo's length, after checking every dataset against the spec (nothing is written before)."""
    if "actions" not in demo:
        raise SpecMismatchError(f"{path}: data/{name} has no actions dataset; every robomimic demo needs one")
    n = demo["actions"].shape[0]
    unknown = [k for k in demo if k not in (*STEP_DATASETS, "obs", "next_obs") and k not in ignore]
    unknown += [f"obs/{k}" for k in demo.get("obs", {}) if k not in spec.obs_keys and f"obs/{k}" not in ignore]
    if unknown:
        raise SpecMismatchError(f"{path}: data/{name} has datasets {unknown} that the spec has no key for "
                                f"(its keys: {list(spec.obs_keys)}); pass --ignore {' '.join(unknown)} to leave them out")
    expected = {f"obs/{k}": s for k, s in spec.keys().items() if k in spec.obs_keys and k != SIM_STATE_KEY}
    expected["actions"] = spec.action
    if SIM_STATE_KEY in spec.state and not exported:
        expected["states"] = spec.state[SIM_STATE_KEY]
    for key, key_spec in expected.items():
        if key not in demo:
            raise SpecMismatchError(f"{path}: data/{name} has no {key} (expected shape {key_spec.shape}, "
                                    f"dtype {key_spec.dtype}); every demo must hold the same keys")
        ds = demo[key]
        if ds.shape != (n, *key_spec.shape):
            raise SpecMismatchError(f"{path}: data/{name}/{key}: expected shape {(n, *key_spec.shape)}, "
                                    f"found {ds.shape}; every demo must hold the same shapes")
    return n


def _read_rows(demo, spec: EmbodimentSpec, exported: bool, start: int, stop: int, path, name) -> dict:
    try:
        rows = {key: demo[f"obs/{key}"][start:stop] for key in spec.obs_keys if key != SIM_STATE_KEY or exported}
        if SIM_STATE_KEY in spec.state and not exported:
            rows[SIM_STATE_KEY] = demo["states"][start:stop]
        rows["action"] = demo["actions"][start:stop]
        n = stop - start
        rows["reward"] = demo["rewards"][start:stop] if "rewards" in demo else np.zeros(n, np.float32)
        rows["terminated"] = (demo["dones"][start:stop] != 0) if "dones" in demo else np.zeros(n, bool)
        rows["truncated"] = demo["truncated"][start:stop] if "truncated" in demo else np.zeros(n, bool)
        rows["timestamp"] = (demo["timestamps"][start:stop] if "timestamps" in demo
                             else np.arange(start, stop) / spec.control_rate_hz)
    except OSError as e:
        raise StoreError(f"{path}: data/{name} rows {start}..{stop - 1} do not read ({e}); the file is damaged "
                         "or truncated: fetch it again") from e
    return rows
