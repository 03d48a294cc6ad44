"""Bad input gets an error that names the problem and the fix, and loses nothing committed."""
import dataclasses
import json

import numpy as np
import pytest
import zarr

from robot_rl.cli.main import main as cli
from robot_rl.datasets.errors import CorruptChunkError, FormatVersionError, NotAStoreError
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.repair import validate
from robot_rl.datasets.writer import StoreWriter
from store_helpers import expected_episode, frames_of, tiny_spec, write_episodes


@pytest.mark.parametrize("make", ["missing", "empty_dir", "file", "plain_zarr"])
def test_a_path_that_is_not_a_store(tmp_path, make):
    path = tmp_path / "x"
    if make == "empty_dir":
        path.mkdir()
    elif make == "file":
        path.write_text("hello")
    elif make == "plain_zarr":
        zarr.open_group(str(path), mode="w")
    with pytest.raises(NotAStoreError, match="no such store|not a zarr group|not a robot_rl trajectory store|is a file, not a store"):
        TrajectoryReader(path)
    with pytest.raises(NotAStoreError):
        StoreWriter(path)
    assert [p.severity for p in validate(path)] == ["error"]


def test_a_store_of_a_newer_format_is_refused_untouched(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 2)
    root_meta = path / "zarr.json"
    doc = json.loads(root_meta.read_text())
    doc["attributes"]["robot_rl_format"] = 99
    root_meta.write_text(json.dumps(doc))
    before = sorted((p, p.stat().st_mtime_ns) for p in path.rglob("*"))
    with pytest.raises(FormatVersionError, match="format 99.*upgrade robot-rl"):
        TrajectoryReader(path)
    with pytest.raises(FormatVersionError):
        StoreWriter(path)
    assert sorted((p, p.stat().st_mtime_ns) for p in path.rglob("*")) == before


def flip_a_byte_of_frame(store_path, key, step):
    """Damage one frame inside its shard file, the way a bad disk sector would."""
    array = zarr.open_group(str(store_path), mode="r")[f"data/{key}"]
    per_shard = array.shards[0]
    shard = store_path / "data" / key / "c" / str(step // per_shard) / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    index = np.frombuffer(bytes(raw[-(16 * per_shard + 4):-4]), "<u8").reshape(per_shard, 2)
    offset = int(index[step % per_shard][0]) + 8
    raw[offset] ^= 0xFF
    shard.write_bytes(bytes(raw))


def test_a_corrupted_frame_is_named_and_other_episodes_still_read(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 4)
    reader = TrajectoryReader(path)
    bad_step = int(reader.episode_ends[1]) + 2  # inside episode 2
    flip_a_byte_of_frame(path, "cam", bad_step)
    reader = TrajectoryReader(path)
    with pytest.raises(CorruptChunkError, match=f"data/cam: frame {bad_step} does not decode.*checksum.*validate"):
        reader.episode(2)
    for index in (0, 1, 3):
        np.testing.assert_array_equal(reader.episode(index)["cam"], expected_episode(tiny_spec(), index)["cam"])
    errors = [p.message for p in validate(path) if p.severity == "error"]
    assert len(errors) == 1 and "data/cam shard 0" in errors[0] and "affects episodes 2" in errors[0]
    assert "1 of " in errors[0] and "frames damaged (checksum mismatch)" in errors[0]
    write_episodes(path, 4, 1)  # the store still takes new episodes
    assert TrajectoryReader(path).num_episodes == 5


def test_a_corrupted_lowdim_chunk_is_named(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 3)
    (path / "data" / "state" / "c" / "0" / "0").write_bytes(b"garbage")
    with pytest.raises(CorruptChunkError, match="data/state rows 0..*validate"):
        TrajectoryReader(path)
    errors = [p.message for p in validate(path) if p.severity == "error"]
    assert [m for m in errors if "data/state chunk 0" in m and "affects episodes 0-2" in m], errors


def test_cli_reports_errors_with_exit_codes(tmp_path, capsys):
    assert cli(["data", "info", str(tmp_path / "nope")]) == 2
    assert "no such store" in capsys.readouterr().err
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 3)
    assert cli(["data", "validate", str(path)]) == 0
    assert "is sound" in capsys.readouterr().out
    assert cli(["data", "info", str(path)]) == 0
    assert "damaged" not in capsys.readouterr().out
    (path / "data" / "cam" / "c" / "0" / "0" / "0" / "0").unlink()  # a deleted shard: every frame of it
    assert cli(["data", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out  # one line for the shard, not one per frame
    assert "data/cam shard 0 (rows 0..23): 24 of 24 frames missing; affects episodes 0-2" in errors[0], out
    assert cli(["data", "info", str(path)]) == 1  # info warns too, and says so in its exit status
    out = capsys.readouterr().out
    assert "fails validation (1 problems" in out and "data/cam shard 0" in out and "episodes" in out
    assert cli(["data", "info", "--no-check", str(path)]) == 0


def write_actions(path, spec, actions) -> None:
    """One episode per list of (row, action) overrides, on the synthetic frames of store_helpers."""
    with StoreWriter.create(path, spec) as store:
        for index, overrides in enumerate(actions):
            episode = store.new_episode(source="teleop")
            frames = list(frames_of(spec, index + 3))  # episodes 3.. are long enough for the rows used
            for row, action in overrides:
                frames[row]["action"] = np.asarray(action, dtype=np.float32)
            for frame in frames:
                episode.add(frame)
            episode.commit()


def test_recorded_actions_beyond_the_spec_bounds_are_an_error_naming_the_cause_and_the_fix(tmp_path, capsys):
    spec = tiny_spec()
    at_the_bounds = [(0, [-1.0, 1.0, -1.0]), (1, [1.0, -1.0, 1.0])]  # a full step each way: in bounds
    a_jump = [(2, [0.0, 0.0, -1.31])]  # what a Franka recorded when home lay above its safety box
    write_actions(tmp_path / "good.zarr", spec, [at_the_bounds, []])
    assert validate(tmp_path / "good.zarr") == []
    write_actions(tmp_path / "bad.zarr", spec, [at_the_bounds, [], a_jump])
    problems = validate(tmp_path / "bad.zarr")
    assert [p.severity for p in problems] == ["error"], problems
    message = problems[0].message
    assert "data/action: 1 of " in message and "outside the spec's bounds [-1, 1]" in message
    assert "dims [2]" in message and "-1.31" in message and "in episodes 2:" in message
    assert "safety box" in message and "re-record" in message
    assert cli(["data", "validate", str(tmp_path / "bad.zarr")]) == 1
    assert "data/action" in capsys.readouterr().out
    unbounded = dataclasses.replace(spec, action=dataclasses.replace(spec.action, low=None, high=None))
    write_actions(tmp_path / "unbounded.zarr", unbounded, [a_jump])
    assert validate(tmp_path / "unbounded.zarr") == []  # no bounds in the spec: nothing to hold actions to


def test_a_damaged_shard_index_is_named(tmp_path):
    path = tmp_path / "s.zarr"
    write_episodes(path, 0, 2)
    shard = path / "data" / "cam" / "c" / "0" / "0" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:-1] + b"x")
    with pytest.raises(CorruptChunkError, match="index of shard 0 .* is damaged"):
        TrajectoryReader(path).episode(0)


@pytest.mark.parametrize("argv, named", [
    (["train", "algo.batch_size=abc"], "algo.batch_size=abc: expected an integer"),
    (["train", "eval.episodes=-3"], "eval.episodes=-3: expected an integer >= 1"),
    (["train", "task=widowx_nope"], "task='nope' is unknown for robot 'widowx'"),
    (["train", "robot=widowx", "task=fly"], "task='fly' is unknown for robot 'widowx'"),
    (["train", "algo.schedule.online_steps=-5", "image_size=[64]"], "algo.schedule.online_steps=-5"),
    (["train", "reward_type=shaped"], "reward_type=shaped: expected one of dense, sparse"),
    (["finetune", "eval.episodes=0", "realtime=false"], "eval.episodes=0: expected an integer >= 1"),
    (["finetune", "max_lag=0", "realtime=false"], "max_lag=0: expected an integer >= 1"),
    (["eval", "checkpoint=runs/none", "episodes=-1"], "episodes=-1: expected an integer >= 1"),
    (["bringup", "deploy", "rate=-1", "checkpoint=runs/none"], "rate=-1: expected a number"),
    (["deploy", "steps=abc", "checkpoint=runs/none"], "steps=abc: expected an integer"),
])
def test_every_verb_checks_its_whole_config_before_writing_anything(tmp_path, capsys, argv, named):
    run = tmp_path / "run"
    assert cli([*argv, f"run_dir={run}"]) == 2
    err = capsys.readouterr().err
    assert named in err and "nothing was written" in err, err
    assert not run.exists() and not list(tmp_path.iterdir())


def test_collect_refuses_bad_input_before_writing_and_takes_the_task_in_either_form(tmp_path, capsys):
    out, run = tmp_path / "demo.zarr", tmp_path / "run"
    assert cli(["collect", "task=widowx_reach", "episodes=0", f"out={out}", f"run_dir={run}"]) == 2
    assert "episodes=0: expected an integer >= 1" in capsys.readouterr().err
    assert cli(["collect", "robot=widowx", "task=widowx_pick", f"out={out}", f"run_dir={run}"]) == 2
    assert "task='pick' is unknown" in capsys.readouterr().err
    assert not out.exists() and not run.exists()
    write_episodes(out, 0, 1)  # a store of another spec: refused before the run folder is made
    assert cli(["collect", "task=widowx_reach", "episodes=1", f"out={out}", f"run_dir={run}"]) == 2
    assert "different embodiment spec" in capsys.readouterr().err and not run.exists()
    assert TrajectoryReader(out).num_episodes == 1  # nothing recorded is lost
    fresh = tmp_path / "reach.zarr"
    assert cli(["collect", "task=widowx_reach", "episodes=1", "max_steps=5", f"out={fresh}", f"run_dir={run}"]) == 0
    assert TrajectoryReader(fresh).num_episodes == 1 and (run / "config.yaml").exists()


def test_train_refuses_a_dataset_of_another_task_before_writing(tmp_path, capsys):
    dataset, run = tmp_path / "tiny.zarr", tmp_path / "run"
    write_episodes(dataset, 0, 1)  # state of 14 numbers, no task_state: not the WidowX reach twin's
    assert cli(["train", "algo=wsrl", f"dataset={dataset}", f"run_dir={run}"]) == 2
    assert f"dataset={dataset} has no key 'task_state'" in capsys.readouterr().err
    assert not run.exists()
