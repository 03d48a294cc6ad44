"""The learned reward: labels from a store, the held-out split, training, saving and loading, the
`robot-rl train-reward` verb, and the recorder's reward_fn from a saved classifier. The store is a real
zarr store whose success frames show a bright patch somewhere on a noisy background (a task the classifier
must learn, not read off a fixed pixel); the twin's own frames are measured in benchmarks/hil_bench.py."""
from __future__ import annotations

import json

import numpy as np
import pytest

from robot_rl.cli.main import main as cli
from robot_rl.datasets import StoreWriter, TrajectoryReader
from robot_rl.datasets.spec import CameraSpec, EmbodimentSpec, KeySpec
from robot_rl.drivers.recorder_node import load_reward_fn
from robot_rl.learner.reward_classifier import (
    frame_labels,
    load_classifier,
    precision_recall,
    split_episodes,
    train_classifier,
)

SIZE = 24


def frame(rng, success: bool) -> np.ndarray:
    image = rng.integers(0, 90, (SIZE, SIZE, 3), dtype=np.uint8)
    if success:
        r, c = rng.integers(0, SIZE - 8, 2)
        image[r:r + 8, c:c + 8] = (250, 240, 230)
    return image


@pytest.fixture
def store(tmp_path):
    """12 episodes of 10 rows; the even ones succeed from row 6 on (reward 1 there), the odd ones never."""
    spec = EmbodimentSpec("cam", 5.0, KeySpec((7,), "float32"), state={"state": KeySpec((2,), "float32")},
                          cameras={"front": CameraSpec(SIZE, SIZE)})
    rng = np.random.default_rng(0)
    path = tmp_path / "frames.zarr"
    with StoreWriter.create(path, spec) as writer:
        for e in range(12):
            episode = writer.new_episode()
            for t in range(10):
                success = e % 2 == 0 and t >= 6
                episode.add(state=np.zeros(2, np.float32), front=frame(rng, success), action=np.zeros(7, np.float32),
                            reward=np.float32(success), terminated=False, truncated=False, timestamp=float(t))
            episode.commit(success=e % 2 == 0)
    return path


def test_labels_are_rewarded_rows_and_the_tail_of_successful_episodes(store):
    reader = TrajectoryReader(store)
    labels = frame_labels(reader)
    assert labels[:10].tolist() == [False] * 6 + [True] * 4 and not labels[10:20].any()
    no_rewards = frame_labels(reader, reward_at=2.0, success_tail=2)  # as a hardware store: episode success only
    assert no_rewards[:10].tolist() == [False] * 8 + [True] * 2 and not no_rewards[10:20].any()


def test_held_out_episodes_are_never_trained_on():
    train, held = split_episodes(12, 0.25, seed=3)
    assert len(held) == 3 and not set(train) & set(held) and sorted([*train, *held]) == list(range(12))
    train, held = split_episodes(12, 0.25, seed=3, strata=[True] * 4 + [False] * 8)
    assert len(set(held) & {0, 1, 2, 3}) == 1 and len(set(held) - {0, 1, 2, 3}) == 2, "each group split alike"
    with pytest.raises(ValueError, match="at least 2"):
        split_episodes(1, 0.25, 0)


def test_precision_and_recall_count_hits():
    m = precision_recall([True, True, False, False], [True, False, True, False])
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["positives"] == 2


def test_the_classifier_learns_success_frames_and_is_measured_on_held_out_episodes(store, tmp_path):
    classifier, report = train_classifier(store, camera="front", out=tmp_path / "clf", size=SIZE, epochs=40,
                                          batch_size=32, lr=3e-3, holdout=0.25, seed=1)
    held = report["held_out"]
    assert held["frames"] == 40 and held["positives"] == 2 * 4, "2 of 6 successful and 2 of 6 failed episodes held out"
    assert held["precision"] >= 0.9 and held["recall"] >= 0.9, report
    loaded = load_classifier(tmp_path / "clf")
    rng = np.random.default_rng(7)
    assert loaded.probability({"front": frame(rng, True)}) > 0.5 > loaded.probability({"front": frame(rng, False)})
    saved = json.loads((tmp_path / "clf" / "reward_classifier.json").read_text())
    assert saved["held_out"] == held and saved["camera"] == "front"
    reward_fn, threshold = load_reward_fn(str(tmp_path / "clf"), None)
    assert threshold == 0.5 and reward_fn({"front": frame(rng, True)}) > 0.5
    with pytest.raises(KeyError, match="reads camera 'front'"):
        loaded.probability({"wrist": frame(rng, True)})


def test_the_verb_writes_the_classifier_and_refuses_an_unknown_camera(store, tmp_path, capsys):
    assert cli(["train-reward", f"store={store}", "camera=front", "epochs=2", f"size={SIZE}",
                f"run_dir={tmp_path / 'run'}"]) == 0
    assert (tmp_path / "run" / "reward_classifier.safetensors").exists()
    assert "held-out" in capsys.readouterr().out
    assert cli(["train-reward", f"store={store}", "camera=wrist", f"run_dir={tmp_path / 'bad'}"]) == 2
    assert "camera='wrist'" in capsys.readouterr().err
    assert cli(["train-reward", f"store={store}", "epochs=0", f"run_dir={tmp_path / 'bad'}"]) == 2
