"""robomimic HDF5 both ways: a real store -> HDF5 -> store round trip is bit-exact in every key, the
file follows robomimic's documented layout (read back with h5py, as robomimic's SequenceDataset reads
it; robomimic 0.3 pulls torchvision and an egl_probe build, so it is not in this project's lock), a
robosuite-style file imports, and bad input leaves an existing store untouched. With ``ROBOMIMIC_PYTHON``
pointing at a Python that has robomimic, its SequenceDataset loads an export."""
from __future__ import annotations

import json
import os
import subprocess

import h5py
import numpy as np
import pytest

from robot_rl.datasets import SpecMismatchError, StoreError, TrajectoryReader
from robot_rl.datasets.formats.robomimic import export_robomimic, import_robomimic
from store_helpers import tiny_spec, write_episodes


def store_contents(path) -> tuple[dict, list[dict], dict]:
    reader = TrajectoryReader(path)
    steps = np.arange(reader.num_steps)
    data = {key: reader.gather(key, steps) for key in reader.spec.keys()}
    infos = [reader.episode_info(i) for i in range(reader.num_episodes)]
    return data, infos, reader.spec.to_dict()


def assert_same_store(a, b) -> None:
    data_a, infos_a, spec_a = store_contents(a)
    data_b, infos_b, spec_b = store_contents(b)
    assert json.dumps(spec_a) == json.dumps(spec_b)
    assert infos_a == infos_b
    assert np.array_equal(TrajectoryReader(a).episode_ends, TrajectoryReader(b).episode_ends)
    for key in data_a:
        assert data_a[key].dtype == data_b[key].dtype, key
        assert np.array_equal(data_a[key], data_b[key]), key


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "src.zarr"
    write_episodes(path, 0, 4)
    return path


def test_round_trip_is_bit_exact(store, tmp_path):
    out = tmp_path / "demos.hdf5"
    calls = []
    assert export_robomimic(store, out, progress=lambda done, total: calls.append((done, total))) == 4
    assert calls[-1][0] == calls[-1][1] == TrajectoryReader(store).num_steps
    assert import_robomimic(out, tmp_path / "back.zarr") == 4
    assert_same_store(store, tmp_path / "back.zarr")


def test_file_has_robomimic_layout(store, tmp_path):
    out = tmp_path / "demos.hdf5"
    export_robomimic(store, out)
    reader = TrajectoryReader(store)
    with h5py.File(out, "r") as f:
        env = json.loads(f["data"].attrs["env_args"])
        assert env["env_name"] == "tiny" and env["type"] == 2 and "env_kwargs" in env
        assert int(f["data"].attrs["total"]) == reader.num_steps
        assert [n.decode() for n in f["mask/train"][:]] == [f"demo_{i}" for i in range(4)]
        for i in range(4):
            demo, episode = f[f"data/demo_{i}"], reader.episode(i)
            n = int(demo.attrs["num_samples"])
            assert n == len(episode["action"])
            assert np.array_equal(demo["actions"][:], episode["action"])
            assert np.array_equal(demo["obs/cam"][:], episode["cam"])
            assert demo["dones"].dtype == np.int64
            assert np.array_equal(demo["dones"][:], episode["terminated"].astype(np.int64))
            assert np.array_equal(demo["rewards"][:], episode["reward"])
            # next_obs: one step ahead, the last step repeated
            assert np.array_equal(demo["next_obs/state"][: n - 1], episode["state"][1:])
            assert np.array_equal(demo["next_obs/cam"][n - 1], episode["cam"][n - 1])


def robosuite_file(path, *, extra: str | None = None, image_shape=(8, 8, 3)) -> None:
    """A file laid out as robosuite's demonstration collection writes it (states, float64 actions)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}})
        for i, n in enumerate((6, 3)):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = n
            demo.attrs["model_file"] = "<mujoco/>"
            demo["actions"] = rng.normal(size=(n, 7))
            demo["states"] = rng.normal(size=(n, 32))
            demo["rewards"] = np.linspace(0, 1, n)
            demo["dones"] = np.eye(n, dtype=np.int64)[-1]
            demo["obs/robot0_eef_pos"] = rng.normal(size=(n, 3))
            demo["obs/agentview_image"] = rng.integers(0, 255, (n, *image_shape), dtype=np.uint8)
            if extra:
                demo[extra] = np.zeros(n)
        data.attrs["total"] = 9


def test_imports_a_robosuite_file(tmp_path):
    robosuite_file(tmp_path / "lift.hdf5")
    assert import_robomimic(tmp_path / "lift.hdf5", tmp_path / "lift.zarr", instruction="lift the cube") == 2
    reader = TrajectoryReader(tmp_path / "lift.zarr")
    assert reader.spec.control_rate_hz == 20 and reader.spec.name == "Lift"
    assert set(reader.spec.cameras) == {"agentview_image"}
    assert set(reader.spec.state) == {"robot0_eef_pos", "sim_state"}
    with h5py.File(tmp_path / "lift.hdf5", "r") as f:
        episode = reader.episode(0)
        assert np.array_equal(episode["action"], f["data/demo_0/actions"][:])  # float64 kept
        assert np.array_equal(episode["sim_state"], f["data/demo_0/states"][:])
        assert np.array_equal(episode["agentview_image"], f["data/demo_0/obs/agentview_image"][:])
    assert episode["terminated"][-1] and not episode["terminated"][:-1].any()
    assert reader.episode_info(1)["instruction"] == "lift the cube"


def test_truncated_file_is_refused_and_store_untouched(store, tmp_path):
    out = tmp_path / "demos.hdf5"
    export_robomimic(store, out)
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    before = store_contents(store)
    with pytest.raises(StoreError, match="truncated"):
        import_robomimic(cut, store)
    after = store_contents(store)
    assert before[1] == after[1] and all(np.array_equal(before[0][k], after[0][k]) for k in before[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.hdf5", "demos.hdf5", "src.zarr"]


def test_unknown_dataset_is_named(tmp_path):
    robosuite_file(tmp_path / "lift.hdf5", extra="rewards_dense")
    with pytest.raises(SpecMismatchError, match=r"rewards_dense.*--ignore rewards_dense"):
        import_robomimic(tmp_path / "lift.hdf5", tmp_path / "lift.zarr")
    assert not (tmp_path / "lift.zarr").exists()
    assert import_robomimic(tmp_path / "lift.hdf5", tmp_path / "lift.zarr", ignore=("rewards_dense",)) == 2


def test_mismatched_spec_leaves_existing_store_untouched(store, tmp_path):
    robosuite_file(tmp_path / "lift.hdf5")
    before = store_contents(store)
    with pytest.raises(SpecMismatchError, match="another embodiment spec"):
        import_robomimic(tmp_path / "lift.hdf5", store)
    assert store_contents(store)[1] == before[1]


def test_appends_to_a_store_of_the_same_spec(store, tmp_path):
    out = tmp_path / "demos.hdf5"
    export_robomimic(store, out)
    other = tmp_path / "other.zarr"
    write_episodes(other, 10, 2)
    assert tiny_spec().to_dict() == TrajectoryReader(other).spec.to_dict()
    import_robomimic(out, other)
    reader = TrajectoryReader(other)
    assert reader.num_episodes == 6
    assert [reader.episode_info(i)["instruction"] for i in range(6)] == [f"episode {i}" for i in (10, 11, 0, 1, 2, 3)]


def test_existing_file_needs_overwrite(store, tmp_path):
    out = tmp_path / "demos.hdf5"
    out.write_bytes(b"keep me")
    with pytest.raises(StoreError, match="--overwrite"):
        export_robomimic(store, out)
    assert out.read_bytes() == b"keep me"


# --- robomimic's own SequenceDataset (a Python where robomimic installs) ---------------------------------

ROBOMIMIC_PYTHON = os.environ.get("ROBOMIMIC_PYTHON")
ROBOMIMIC_SCRIPT = r'''
import json, sys
import numpy as np
import robomimic.utils.obs_utils as ObsUtils
from robomimic.utils.dataset import SequenceDataset
ObsUtils.initialize_obs_modality_mapping_from_dict({"low_dim": ["state"], "rgb": ["cam"]})
ds = SequenceDataset(hdf5_path=sys.argv[1], obs_keys=("state", "cam"), dataset_keys=("actions", "rewards", "dones"),
                     load_next_obs=True, frame_stack=1, seq_length=1, pad_frame_stack=True, pad_seq_length=True,
                     get_pad_mask=False, goal_mode=None, hdf5_cache_mode=None, hdf5_use_swmr=True,
                     hdf5_normalize_obs=False, filter_by_attribute="train")
items = [ds[i] for i in range(len(ds))]
print(json.dumps({"demos": ds.n_demos, "actions": np.concatenate([it["actions"] for it in items]).tolist(),
                  "next_state": np.concatenate([it["next_obs"]["state"] for it in items]).tolist(),
                  "cam": np.concatenate([it["obs"]["cam"] for it in items]).tolist()}))
'''


@pytest.mark.skipif(not ROBOMIMIC_PYTHON, reason="set ROBOMIMIC_PYTHON to a Python with robomimic installed")
def test_robomimic_sequence_dataset_loads_an_export(store, tmp_path):
    out = tmp_path / "demos.hdf5"
    export_robomimic(store, out)
    done = subprocess.run([ROBOMIMIC_PYTHON, "-c", ROBOMIMIC_SCRIPT, str(out)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=240, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    reader = TrajectoryReader(store)
    episodes = [reader.episode(i) for i in range(reader.num_episodes)]
    assert loaded["demos"] == 4
    assert np.array_equal(np.array(loaded["actions"], np.float32), np.concatenate([e["action"] for e in episodes]))
    assert np.array_equal(np.array(loaded["cam"], np.uint8), np.concatenate([e["cam"] for e in episodes]))
    next_state = np.concatenate([np.concatenate([e["state"][1:], e["state"][-1:]]) for e in episodes])
    assert np.array_equal(np.array(loaded["next_state"], np.float32), next_state)
