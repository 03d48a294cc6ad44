"""LeRobot datasets (format v3.0), both ways::

    meta/info.json                  codebase_version "v3.0", fps, robot_type, features, path templates
    meta/tasks.parquet              one row per task (the instruction), index = task text
    meta/episodes/chunk-000/file-000.parquet   per episode: tasks, length, data and video locations
    meta/stats.json                 min, max, mean, std, count per feature
    data/chunk-000/file-000.parquet one row per frame: the low-dimensional features, timestamp,
                                    frame_index, episode_index, index, task_index
    videos/<camera feature>/chunk-000/file-000.mp4   the camera's frames of every episode, in order

Keys: state key ``state`` <-> ``observation.state``, another state key ``k`` <-> ``observation.k``,
camera ``c`` <-> ``observation.images.c`` (video), ``action`` <-> ``action``, ``reward`` <->
``next.reward``, ``terminated`` <-> ``next.done``, ``truncated`` <-> ``next.truncated``, the store's
``timestamp`` (absolute, float64) <-> ``wall_time`` (LeRobot's own ``timestamp`` is the time since the
episode's start, frame_index / fps). The instruction is the episode's task.

An export also carries the embodiment spec (``info.json`` key ``robot_rl``) and every episode's info
(column ``robot_rl/info`` of the episodes table), so store -> LeRobot -> store keeps every key: bit-exact
but for the camera frames, which are video (AV1 by default: about 37 dB PSNR on synthetic 640x480 scenes;
``vcodec="lossless"`` writes RGB H.264 at CRF 0, bit-exact, about 30 times larger).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robot_rl.datasets.errors import SpecMismatchError, StoreError
from robot_rl.datasets.formats.common import (
    Progress,
    episode_blocks,
    episode_kwargs,
    require,
    staged_import,
    staged_output,
)
from robot_rl.datasets.formats.video import VideoReader, VideoWriter
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.spec import CameraSpec, EmbodimentSpec, KeySpec

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
STEP_FEATURES = {"action": "action", "reward": "next.reward", "terminated": "next.done",
                 "truncated": "next.truncated", "timestamp": "wall_time"}
INFO_COLUMN = "robot_rl/info"
STATS_EVERY = 10  # camera statistics from every 10th frame, every 4th pixel each way (as LeRobot subsamples)


def feature_name(spec: EmbodimentSpec, key: str) -> str:
    if key in spec.cameras:
        return f"observation.images.{key}"
    if key in spec.state:
        return "observation.state" if key == "state" else f"observation.{key}"
    return STEP_FEATURES[key]


# --- export -----------------------------------------------------------------------------------------

def export_lerobot(src, out, *, overwrite: bool = False, vcodec: str = "av1",
                   progress: Progress | None = None) -> int:
    """Write every committed episode of the store ``src`` as a LeRobot v3.0 dataset folder ``out``.
    Returns the number of episodes."""
    pa, pq = require("pyarrow"), require("pyarrow.parquet", "pyarrow")
    reader = TrajectoryReader(src)
    spec = reader.spec
    fps = spec.control_rate_hz
    keys = spec.keys()
    lowdim = [k for k in keys if k not in spec.cameras]
    infos = [reader.episode_info(i) for i in range(reader.num_episodes)]
    tasks = list(dict.fromkeys(info.get("instruction", "") for info in infos))
    schema = pa.schema([*(pa.field(feature_name(spec, k), _arrow_type(pa, keys[k])) for k in lowdim),
                        pa.field("timestamp", pa.float32()), *(pa.field(k, pa.int64()) for k in BOOKKEEPING[1:])])
    stats = {feature_name(spec, k): _Stats() for k in keys}
    episodes, done = [], 0
    with staged_output(out, overwrite) as root:
        (root / "meta").mkdir(parents=True)
        videos = {}
        for name, cam in spec.cameras.items():
            path = root / VIDEO_PATH.format(video_key=feature_name(spec, name), chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True)
            videos[name] = VideoWriter(path, fps, cam.height, cam.width, vcodec)
        data_path = root / DATA_PATH.format(chunk_index=0, file_index=0)
        data_path.parent.mkdir(parents=True)
        with pq.ParquetWriter(data_path, schema) as data:
            for index, info in enumerate(infos):
                first = done
                for block in episode_blocks(reader, index):
                    n = len(block["timestamp"])
                    frame_index = np.arange(done - first, done - first + n)
                    columns = {feature_name(spec, k): _arrow_column(pa, block[k]) for k in lowdim}
                    columns.update(timestamp=pa.array((frame_index / fps).astype(np.float32)),
                                   frame_index=pa.array(frame_index), episode_index=pa.array(np.full(n, index)),
                                   index=pa.array(np.arange(done, done + n)),
                                   task_index=pa.array(np.full(n, tasks.index(info.get("instruction", "")))))
                    data.write_table(pa.table(columns, schema=schema))
                    for key, values in block.items():
                        camera = key in spec.cameras
                        stats[feature_name(spec, key)].add(values[::STATS_EVERY, ::4, ::4] if camera else values, camera)
                    for name, writer in videos.items():
                        for frame in block[name]:
                            writer.add(frame)
                    done += n
                    if progress:
                        progress(done, reader.num_steps)
                episodes.append(_episode_row(spec, index, info, first, done, fps))
        for writer in videos.values():
            writer.close()
        pq.write_table(pa.Table.from_pylist(episodes), _mkparent(root / EPISODES_PATH))
        pq.write_table(pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                                 "__index_level_0__": pa.array(tasks, pa.large_string())}).replace_schema_metadata(
            {"pandas": json.dumps({"index_columns": ["__index_level_0__"], "column_indexes": [],
                                   "columns": [{"name": None, "field_name": "__index_level_0__",
                                                "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
                                               {"name": "task_index", "field_name": "task_index",
                                                "pandas_type": "int64", "numpy_type": "int64", "metadata": None}]})}),
            root / "meta/tasks.parquet")
        features = _features(spec, vcodec)
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": spec.name, "total_episodes": len(infos),
                "total_frames": done, "total_tasks": len(tasks), "chunks_size": 1000, "data_files_size_in_mb": 100,
                "video_files_size_in_mb": 200, "fps": int(fps) if float(fps).is_integer() else fps,
                "splits": {"train": f"0:{len(infos)}"}, "data_path": DATA_PATH,
                "video_path": VIDEO_PATH if spec.cameras else None, "features": features,
                "robot_rl": {"spec": spec.to_dict()}}
        (root / "meta/info.json").write_text(json.dumps(info, indent=4))
        (root / "meta/stats.json").write_text(json.dumps({k: s.summary() for k, s in stats.items() if s.count},
                                                         indent=4))
    return len(infos)


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _arrow_type(pa, key_spec: KeySpec):
    value = pa.from_numpy_dtype(np.dtype(key_spec.dtype))
    if key_spec.shape in ((), (1,)):
        return value
    for size in reversed(key_spec.shape):
        value = pa.list_(value, size)
    return value


def _arrow_column(pa, values: np.ndarray):
    if values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1):
        return pa.array(values.reshape(-1))
    column = pa.array(values.reshape(-1))
    for size in reversed(values.shape[1:]):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return column


def _features(spec: EmbodimentSpec, vcodec: str) -> dict:
    from robot_rl.datasets.formats.video import VIDEO_CODECS

    features = {}
    for key, key_spec in spec.keys().items():
        name = feature_name(spec, key)
        if key in spec.cameras:
            cam = spec.cameras[key]
            features[name] = {"dtype": "video", "shape": [cam.height, cam.width, 3],
                              "names": ["height", "width", "channels"],
                              "info": {"video.height": cam.height, "video.width": cam.width,
                                       "video.codec": VIDEO_CODECS[vcodec][3], "video.pix_fmt": VIDEO_CODECS[vcodec][1],
                                       "video.is_depth_map": False, "video.fps": spec.control_rate_hz,
                                       "video.channels": 3, "has_audio": False}}
        else:
            features[name] = {"dtype": key_spec.dtype, "shape": list(key_spec.shape) or [1], "names": None}
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for key in BOOKKEEPING[1:]:
        features[key] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def _episode_row(spec: EmbodimentSpec, index: int, info: dict, first: int, end: int, fps: float) -> dict:
    row = {"episode_index": index, "tasks": [info.get("instruction", "")], "length": end - first,
           "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": first, "dataset_to_index": end}
    for name in spec.cameras:
        video = f"videos/{feature_name(spec, name)}"
        row.update({f"{video}/chunk_index": 0, f"{video}/file_index": 0,
                    f"{video}/from_timestamp": first / fps, f"{video}/to_timestamp": end / fps})
    row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0, INFO_COLUMN: json.dumps(info)})
    return row


class _Stats:
    """min, max, mean, std, count of a feature (images: per channel, in [0, 1], shape (3, 1, 1))."""

    def __init__(self):
        self.count, self.total, self.squares, self.low, self.high, self.image = 0, 0.0, 0.0, None, None, False

    def add(self, values: np.ndarray, image: bool) -> None:
        if len(values) == 0:
            return
        self.image = image
        x = values.reshape(-1, 3) / np.float32(255) if image else values.astype(np.float64).reshape(len(values), -1)
        low, high = x.min(axis=0), x.max(axis=0)
        self.low = low if self.low is None else np.minimum(self.low, low)
        self.high = high if self.high is None else np.maximum(self.high, high)
        self.total = self.total + x.sum(axis=0, dtype=np.float64)
        self.squares = self.squares + np.square(x).sum(axis=0, dtype=np.float64)
        self.count += len(values)
        self._rows = getattr(self, "_rows", 0) + len(x)

    def summary(self) -> dict:
        mean = self.total / self._rows
        std = np.sqrt(np.maximum(self.squares / self._rows - mean**2, 0))
        shape = (3, 1, 1) if self.image else (-1,)
        return {"min": self.low.reshape(shape).tolist(), "max": self.high.reshape(shape).tolist(),
                "mean": mean.reshape(shape).tolist(), "std": std.reshape(shape).tolist(), "count": [self.count]}


# --- import -----------------------------------------------------------------------------------------

def import_lerobot(root, dst, *, overwrite: bool = False, source: str = "teleop", camera_codec: str = "zstd",
                   ignore: tuple[str, ...] = (), progress: Progress | None = None) -> int:
    """Import every episode of the LeRobot v3.0 dataset folder ``root`` into the store ``dst`` (created,
    or appended to when it holds the same spec). A dataset exported by this package comes back with its
    spec and episode info; another one gets a spec built from its features (``ignore`` names features to
    leave out). Returns the number of episodes imported."""
    pq = require("pyarrow.parquet", "pyarrow")
    root = Path(root)
    info = _read_info(root)
    fps = float(info["fps"])
    features = {k: v for k, v in info["features"].items() if k not in ignore}
    keys = _feature_keys(features, root)
    spec = (EmbodimentSpec.from_dict(info["robot_rl"]["spec"]) if "robot_rl" in info
            else _infer_spec(info, features, keys, camera_codec))
    _check_features(spec, keys, features, root)
    episodes = _read_table(pq, root / "meta/episodes", "the episodes table").to_pylist()
    episodes.sort(key=lambda e: e["episode_index"])
    total = sum(e["length"] for e in episodes)
    videos: dict[tuple[str, int, int], VideoReader] = {}
    data_files: dict[tuple[int, int], dict] = {}
    done = 0
    try:
        with staged_import(dst, spec, overwrite=overwrite) as writer:
            for episode_meta in episodes:
                rows = _episode_rows(pq, root, info, episode_meta, keys, features, spec, data_files)
                for key in spec.cameras:
                    rows[key] = _episode_frames(root, info, episode_meta, features, key, keys, fps, videos)
                if INFO_COLUMN in episode_meta and episode_meta[INFO_COLUMN]:
                    kwargs, success = episode_kwargs(json.loads(episode_meta[INFO_COLUMN]))
                else:
                    tasks = list(episode_meta.get("tasks") or [])
                    kwargs, success = {"instruction": tasks[0] if tasks else "", "tasks": tasks, "source": source,
                                       "lerobot_episode": int(episode_meta["episode_index"])}, None
                episode = writer.new_episode(**kwargs)
                for t in range(episode_meta["length"]):
                    episode.add({key: values[t] for key, values in rows.items()})
                episode.commit(success=success)
                done += episode_meta["length"]
                if progress:
                    progress(done, total)
    finally:
        for video in videos.values():
            video.close()
    return len(episodes)


def _read_info(root: Path) -> dict:
    path = root / "meta/info.json"
    if not path.is_file():
        raise StoreError(f"{root}: no meta/info.json, so not a LeRobot dataset folder; check the path")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise StoreError(f"{path} is not valid JSON ({e}); the file is truncated or damaged") from e
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise StoreError(f"{root}: LeRobot dataset format {version or '(none)'}, this importer reads v3.0: convert it "
                         "with lerobot's v2.1 -> v3.0 converter (lerobot.datasets.v30.convert_dataset_v21_to_v30)")
    return info


def _feature_keys(features: dict, root: Path) -> dict[str, str]:
    """feature -> store key, for every feature but LeRobot's bookkeeping; an unknown one is an error."""
    reverse = {v: k for k, v in STEP_FEATURES.items()}
    keys, unknown = {}, []
    for name, feature in features.items():
        if name in BOOKKEEPING:
            continue
        if feature["dtype"] in ("video", "image"):
            keys[name] = name.removeprefix("observation.images.").removeprefix("observation.image").replace(".", "_") or "image"
        elif name == "observation.state":
            keys[name] = "state"
        elif name.startswith("observation."):
            keys[name] = name.removeprefix("observation.").replace(".", "_")
        elif name in reverse:
            keys[name] = reverse[name]
        else:
            unknown.append(name)
    if unknown:
        described = ", ".join(f"{n} ({features[n]['dtype']} {features[n]['shape']})" for n in unknown)
        raise SpecMismatchError(
            f"{root}: features {described} have no place in the store (it takes observation.*, action, next.reward, "
            f"next.done, next.truncated, wall_time); pass --ignore {' '.join(unknown)} to leave them out")
    return keys


def _infer_spec(info: dict, features: dict, keys: dict[str, str], camera_codec: str) -> EmbodimentSpec:
    state, cameras, action = {}, {}, None
    for name, key in keys.items():
        feature = features[name]
        shape = tuple(feature["shape"])
        if feature["dtype"] in ("video", "image"):
            if len(shape) != 3 or 3 not in (shape[0], shape[2]):
                raise SpecMismatchError(f"feature {name}: expected an RGB image (H, W, 3), found shape {shape}; "
                                        f"pass --ignore {name} to leave it out")
            height, width = (shape[0], shape[1]) if shape[2] == 3 else (shape[1], shape[2])
            cameras[key] = CameraSpec(height, width, codec=camera_codec)
        elif key == "action":
            action = KeySpec(shape, feature["dtype"])
        elif key not in STEP_FEATURES:
            state[key] = KeySpec(shape, feature["dtype"])
    if action is None:
        raise SpecMismatchError("the dataset has no 'action' feature; every store episode needs actions")
    return EmbodimentSpec(name=info.get("robot_type") or "lerobot", control_rate_hz=float(info["fps"]),
                          action=action, state=state, cameras=cameras)


def _check_features(spec: EmbodimentSpec, keys: dict[str, str], features: dict, root: Path) -> None:
    expected = spec.keys()
    for name, key in keys.items():
        if key not in expected:
            raise SpecMismatchError(f"{root}: feature {name} maps to key {key!r}, which the spec {spec.name!r} "
                                    f"does not have (its keys: {list(expected)}); pass --ignore {name}")
        if key in spec.cameras:
            continue
        found = tuple(features[name]["shape"])
        want = expected[key].shape
        if found != want and not (want == () and found == (1,)):
            raise SpecMismatchError(f"{root}: feature {name}: expected shape {list(want) or [1]}, found {list(found)}")
    missing = [k for k in [*spec.obs_keys, "action"] if k not in keys.values()]
    if missing:
        raise SpecMismatchError(f"{root}: the spec {spec.name!r} needs keys {missing}, which no feature holds")


def _read_table(pq, path: Path, what: str):
    try:
        return pq.read_table(path) if path.is_file() else pq.ParquetDataset(path).read()
    except Exception as e:  # pyarrow's errors share no base class
        raise StoreError(f"{path}: {what} does not read ({type(e).__name__}: {e}); the file is truncated or "
                         "damaged: fetch the dataset again") from e


def _episode_rows(pq, root, info, meta, keys, features, spec, data_files) -> dict[str, np.ndarray]:
    location = (meta["data/chunk_index"], meta["data/file_index"])
    if location not in data_files:
        data_files.clear()  # episodes are in file order: one data file in memory at a time
        path = root / info["data_path"].format(chunk_index=location[0], file_index=location[1])
        table = _read_table(pq, path, "a data file")
        data_files[location] = {"index": table.column("index").to_numpy(), "table": table}
    table, index = data_files[location]["table"], data_files[location]["index"]
    lo, hi = np.searchsorted(index, [meta["dataset_from_index"], meta["dataset_to_index"]])
    if hi - lo != meta["length"]:
        raise StoreError(f"{root}: episode {meta['episode_index']} has {meta['length']} frames in the episodes table "
                         f"but {hi - lo} rows in its data file; the dataset is damaged")
    part = table.slice(lo, hi - lo)
    n = hi - lo
    expected = spec.keys()
    rows = {}
    for name, key in keys.items():
        if key in spec.cameras:
            continue
        rows[key] = _column(part.column(name), expected[key].shape)
    rows.setdefault("reward", np.zeros(n, np.float32))
    rows.setdefault("terminated", np.zeros(n, bool))
    rows.setdefault("truncated", np.zeros(n, bool))
    if "timestamp" not in rows:
        rows["timestamp"] = part.column("timestamp").to_numpy().astype(np.float64)
    return rows


def _column(column, shape: tuple[int, ...]) -> np.ndarray:
    """A parquet column (scalars, or fixed-size or variable lists, nested) as an (N, *shape) array."""
    values = column.combine_chunks()
    while hasattr(values.type, "value_type"):
        values = values.flatten()
    return values.to_numpy(zero_copy_only=False).reshape(len(column), *shape)


def _episode_frames(root, info, meta, features, key, keys, fps, videos) -> np.ndarray:
    name = next(n for n, k in keys.items() if k == key)
    if features[name]["dtype"] == "image":
        raise StoreError(f"{root}: feature {name} stores images in the data files; this importer reads video "
                         "features (re-encode the dataset with lerobot's video option)")
    video = f"videos/{name}"
    location = (name, meta[f"{video}/chunk_index"], meta[f"{video}/file_index"])
    if location not in videos:
        for old in [k for k in videos if k[0] == name]:
            videos.pop(old).close()
        path = root / info["video_path"].format(video_key=name, chunk_index=location[1], file_index=location[2])
        if not path.is_file():
            raise StoreError(f"{path}: the video of {name} is missing; fetch the dataset again")
        videos[location] = VideoReader(path, fps, name)
    first = round(meta[f"{video}/from_timestamp"] * fps)
    frames = videos[location].read(first, meta["length"])
    want = tuple(features[name]["shape"])
    if frames.shape[1:] != want and frames.shape[1:] != (want[1], want[2], want[0]):
        raise SpecMismatchError(f"{root}: the video of {name} holds frames of shape {frames.shape[1:]}, its feature "
                                f"says {want}; the dataset is inconsistent")
    return frames
