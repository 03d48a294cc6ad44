"""The policy node's ROS-free core (robot_rl.drivers.policy_runner) and policy loading from a checkpoint
alone (robot_rl.learner.policy): real checkpoints from a tiny `robot-rl train` run, real twin observations;
no rclpy anywhere in this file.

The checkpoints are untrained (these tests check plumbing, not skill); the second is the first with its
weights perturbed through safetensors.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf
from safetensors.numpy import load_file, save_file

from robot_rl.drivers.policy_runner import (
    MAX_UNANSWERED,
    CommandTimer,
    ObservationMismatch,
    PolicyRunner,
    load_checkpoint_policy,
    report_text,
    twin_observation,
    write_report,
)
from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend
from robot_rl.learner.checkpoint import SPEC, resolve_checkpoint


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(run folder A, checkpoint folder B): a tiny SAC run on widowx_reach, and a perturbed copy of it."""
    from learner_helpers import tiny_checkpoint

    root = tmp_path_factory.mktemp("policy_runner")
    run_a = tiny_checkpoint(root / "run_a")
    checkpoint_b = root / "run_b" / "checkpoints" / "step_b"
    shutil.copytree(resolve_checkpoint(run_a), checkpoint_b)
    perturb_weights(checkpoint_b, seed=1)
    return run_a, checkpoint_b


def perturb_weights(folder, seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights = load_file(folder / "model.safetensors")
    noisy = {k: np.asarray(v + rng.normal(0.0, 0.3, v.shape).astype(v.dtype)) if v.dtype.kind == "f" else v
             for k, v in weights.items()}
    save_file(noisy, folder / "model.safetensors")


@pytest.fixture(scope="module")
def observation():
    backend = WidowXTwinBackend(task="reach", seed=5)
    try:
        return twin_observation(backend)()
    finally:
        backend.close()


def expected_action(policy, obs) -> np.ndarray:
    return np.clip(policy.act(obs, deterministic=True)[0].astype(float), -1.0, 1.0)


# --- loading: the checkpoint alone ----------------------------------------------------------------

def test_a_policy_loads_from_its_checkpoint_without_mujoco_or_ros(checkpoints):
    run_a, _ = checkpoints
    script = ("import sys\nfrom robot_rl.drivers.policy_runner import load_checkpoint_policy\n"
              f"policy = load_checkpoint_policy({str(run_a)!r})\n"
              "print(policy.keys, policy.shapes, sorted(m for m in ('mujoco', 'rclpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "('state', 'task_state') {'state': (14,), 'task_state': (3,)} []"


def test_a_load_reads_the_config_once_and_the_spec_is_the_twins(checkpoints, monkeypatch):
    from robot_rl.sim import make_env

    run_a, _ = checkpoints
    reads = []
    real_load = OmegaConf.load
    monkeypatch.setattr(OmegaConf, "load", lambda path: reads.append(path) or real_load(path))  # a counting spy
    policy = load_checkpoint_policy(run_a)
    assert [p.name for p in reads] == ["config.yaml"]
    env = make_env("widowx", "reach")
    assert policy.spec.to_dict() == env.unwrapped.embodiment.to_dict()
    env.close()


def test_a_checkpoint_without_its_spec_is_refused_naming_the_fix_and_add_spec_mends_it(checkpoints, tmp_path):
    run_a, _ = checkpoints
    old = tmp_path / "old"
    shutil.copytree(resolve_checkpoint(run_a), old)
    saved_spec = json.loads((old / SPEC).read_text())
    (old / SPEC).unlink()
    with pytest.raises(FileNotFoundError, match=rf"no spec.json .*python -m robot_rl.learner.policy add-spec {old}"):
        load_checkpoint_policy(old)
    done = subprocess.run([sys.executable, "-m", "robot_rl.learner.policy", "add-spec", str(old)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "spec.json written to 1 checkpoint(s)" in done.stdout, done.stderr[-3000:]
    assert json.loads((old / SPEC).read_text()) == saved_spec
    assert load_checkpoint_policy(old).folder == old


def test_a_twin_is_built_separately_and_refused_where_it_observes_other_shapes(checkpoints):
    from robot_rl.learner.policy import checkpoint_twin, load_agent, twin_config

    policy = load_agent(checkpoints[0])
    env = checkpoint_twin(policy, twin_config(policy, dynamics={"mass_scale": 1.5}))
    assert env.unwrapped.dynamics.mass_scale == 1.5 and env.unwrapped.embodiment.to_dict() == policy.spec.to_dict()
    env.close()
    with pytest.raises(ValueError, match=r"key 'task_state' expected shape \(3,\) .* the twin gives \(10,\)"):
        checkpoint_twin(policy, twin_config(policy, "widowx_pick_place"))
    with pytest.raises(ValueError, match="the checkpoint drives 'widowx'"):
        twin_config(policy, "franka_lift")


# --- acting -----------------------------------------------------------------------------------------

def test_each_tick_acts_on_the_observation_it_reads(checkpoints, observation):
    run_a, _ = checkpoints
    rng = np.random.default_rng(0)
    observations = [{**observation, "state": observation["state"] + rng.normal(0, 0.05, 14).astype(np.float32)}
                    for _ in range(6)]
    feed = iter(observations)
    runner = PolicyRunner(run_a, lambda: next(feed), rate_hz=10.0)  # the first read is the start-up check
    actions = [runner.next_action() for _ in range(5)]
    for obs, action in zip(observations[1:], actions):
        np.testing.assert_allclose(action, expected_action(runner.policy, obs), atol=1e-6)
    assert runner.actions_published == 5 and len(runner.latencies_ms) == 5
    assert runner.awaiting_answer and runner.summary()["commands_pending"] == 5


def test_a_source_lacking_a_key_or_giving_another_shape_is_refused(checkpoints, observation):
    run_a, _ = checkpoints
    with pytest.raises(ObservationMismatch, match="'task_state'.*privileged.*obs_keys=\\[state\\]"):
        PolicyRunner(run_a, lambda: {"state": observation["state"]})
    with pytest.raises(ObservationMismatch, match=r"'state' expected shape \(14,\), the source gives \(9,\)"):
        PolicyRunner(run_a, lambda: {**observation, "state": np.zeros(9, np.float32)})


def test_more_actions_per_chunk_than_it_has_is_refused_at_the_first_tick(checkpoints, observation):
    runner = PolicyRunner(checkpoints[0], lambda: observation, execute_steps=2)
    with pytest.raises(ValueError, match="execute_steps=2 exceeds the policy's chunk length h=1"):
        runner.next_action()


# --- hot reload -------------------------------------------------------------------------------------

def test_a_reload_swaps_at_the_next_tick_and_a_refused_one_keeps_the_old_policy(checkpoints, observation, tmp_path,
                                                                                caplog):
    run_a, checkpoint_b = checkpoints
    changes = []
    runner = PolicyRunner(run_a, lambda: observation, on_change=lambda: changes.append(runner.status()))
    action_a = runner.next_action()
    folder_a = runner.policy.folder

    other_robot = tmp_path / "franka_checkpoint"
    shutil.copytree(checkpoint_b, other_robot)
    config = other_robot / "config.yaml"
    config.write_text(config.read_text().replace("robot: widowx", "robot: franka"))
    for bad, reason in (("/nonexistent/checkpoint", "no checkpoint there"),
                        (other_robot, "drives robot 'franka', this node 'widowx'")):
        with caplog.at_level(logging.ERROR, "robot_rl.policy"):
            assert runner.request_reload(bad) is False
        status = changes[-1]
        assert not status.ok and str(bad) in status.message and reason in status.message
        assert status.values["checkpoint"] == str(folder_a) and reason in caplog.text
        np.testing.assert_allclose(runner.next_action(), action_a)  # the old policy keeps running

    assert runner.request_reload(run_a) is True and runner.pending is None, "already running: nothing to swap"
    assert runner.request_reload(checkpoint_b) is True
    assert runner.policy.folder == folder_a, "the swap waits for the next tick"
    action_b = runner.next_action()
    assert runner.policy.folder == checkpoint_b and runner.reloads == 1
    assert changes[-1].ok and changes[-1].values["reloads"] == "1" and changes[-1].values["last_refusal"] == ""
    np.testing.assert_allclose(action_b, expected_action(load_checkpoint_policy(checkpoint_b), observation), atol=1e-6)
    assert not np.allclose(action_a, action_b, atol=1e-3), "the perturbed weights act the same"


def test_poll_takes_a_newer_latest_once_and_a_refused_one_once(checkpoints, observation, tmp_path, caplog):
    run_a, checkpoint_b = checkpoints
    folder = tmp_path / "checkpoints"
    shutil.copytree(resolve_checkpoint(run_a), folder / "step_1")
    (folder / "latest").write_text("step_1")
    runner = PolicyRunner(tmp_path, lambda: observation)
    runner.poll()
    assert runner.pending is None
    shutil.copytree(checkpoint_b, folder / "step_2")
    (folder / "latest").write_text("step_2")
    runner.poll()
    runner.next_action()
    assert runner.policy.folder == folder / "step_2" and runner.reloads == 1

    shutil.copytree(checkpoint_b, folder / "step_3")
    (folder / "step_3" / "model.safetensors").write_bytes(b"not safetensors")
    (folder / "latest").write_text("step_3")
    with caplog.at_level(logging.ERROR, "robot_rl.policy"):
        runner.poll()
        runner.poll()
    assert len(caplog.records) == 1 and "step_3" in caplog.records[0].getMessage(), "a refused latest is not retried"
    assert runner.policy.folder == folder / "step_2"


# --- timing and the report --------------------------------------------------------------------------

def test_answers_are_matched_in_order_and_commands_without_one_are_counted():
    timer = CommandTimer(period_s=0.2)
    timer.sent(now=0.0)
    timer.answered(now=0.003)
    assert list(timer.latencies_ms) == pytest.approx([3.0]) and timer.pending == 0
    timer.sent(now=0.2)    # refused by the driver: never answered
    timer.sent(now=0.4)
    timer.answered(now=0.402)
    assert list(timer.latencies_ms) == pytest.approx([3.0, 2.0]), "timed from the newer command"
    assert timer.unanswered == 1 and timer.pending == 0
    timer.answered(now=0.5)  # an answer to nothing pending: ignored
    assert len(timer.latencies_ms) == 2
    for i in range(MAX_UNANSWERED + 3):
        timer.sent(now=1.0 + i)
    assert timer.pending == MAX_UNANSWERED and timer.unanswered == 4


def test_the_report_is_written_atomically_with_null_for_what_was_not_measured(checkpoints, observation, tmp_path):
    runner = PolicyRunner(checkpoints[0], lambda: observation)
    runner.next_action()
    runner.answered()
    summary = runner.summary()
    assert summary["actions_published"] == 1 and summary["command_samples"] == 1
    path = write_report(tmp_path / "run" / "deploy.json", {**summary, "command_p99_ms": math.nan}, None)
    report = json.loads(path.read_text())
    assert report["success"] is None and report["command_p99_ms"] is None
    assert report["inference_p50_ms"] == summary["inference_p50_ms"] and report["task"] == "widowx/reach"
    assert [p.name for p in path.parent.iterdir()] == ["deploy.json"]
    text = report_text(summary, True)
    assert text.startswith(f"success: True after 1 actions (checkpoint {summary['checkpoint']})")
    assert "over 1 queries" in text and "over 1 commands" in text and "; 0 unanswered)" in text
    status = runner.status()
    assert status.ok and status.message == f"running {runner.policy.folder.name}"
    assert float(status.values["control_rate_hz"]) > 0 and status.values["control_rate_target_hz"] == "5.0"
