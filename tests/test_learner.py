"""The learner's plumbing on the real WidowX twin and real stores on disk: batch composition per
algorithm, phase schedules, checkpoints and resume, and the `train` / `eval` commands."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from learner_helpers import TINY_SAC, demo_store, tiny_checkpoint, train_config
from robot_rl.cli.main import main
from robot_rl.datasets import TrajectoryReader
from robot_rl.learner.checkpoint import latest_checkpoint, load_checkpoint
from robot_rl.learner.metrics import read_evaluations
from robot_rl.learner.trainer import Trainer


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    return demo_store(tmp_path_factory.mktemp("demos") / "reach.zarr")


def run_trainer(cfg, tmp_path, spy=None):
    trainer = Trainer(cfg, tmp_path / "run")
    if spy is not None:
        update = trainer.agent.update
        trainer.agent.update = lambda batches: (spy.append([b.source.clone() for b in batches]), update(batches))[1]
    state = trainer.run()
    trainer.close()
    return trainer, state


def test_rlpd_batches_are_exactly_half_offline_half_online(tmp_path, reach_demos):
    cfg = train_config(tmp_path, "algo=rlpd", "task=widowx_reach", f"dataset={reach_demos}",
                       "algo.schedule.online_steps=60", "algo.schedule.utd=3", "algo.agent.ensemble_size=4")
    cycles = []
    _, state = run_trainer(cfg, tmp_path, cycles)
    assert cycles, "RLPD made no update: it should start once the online replay holds an episode"
    for minibatches in cycles:
        assert len(minibatches) == 3
        for source in minibatches:
            assert (source == 0).sum() == 8 and (source == 1).sum() == 8
    assert state.critic_updates == 3 * len(cycles)


def test_wsrl_warmup_makes_no_update_and_online_draws_no_offline_row(tmp_path, reach_demos):
    cfg = train_config(tmp_path, "algo=wsrl", "task=widowx_reach", f"dataset={reach_demos}",
                       "algo.schedule.offline_updates=20", "algo.schedule.warmup_steps=50",
                       "algo.schedule.online_steps=130", "algo.schedule.utd=2", "algo.agent.ensemble_size=3")
    trainer, state = run_trainer(cfg, tmp_path)
    offline, warmup, online = state.phase_log
    assert offline == {"phase": "offline", "critic_updates": 20, "offline_rows": 20 * 16, "online_rows": 0}
    assert warmup == {"phase": "warmup", "critic_updates": 0, "offline_rows": 0, "online_rows": 0}
    assert online["phase"] == "online" and online["offline_rows"] == 0
    assert online["critic_updates"] == 2 * 80 and online["online_rows"] == 2 * 80 * 16
    assert trainer.agent.conservative is False, "WSRL fine-tunes with the plain SAC loss"
    assert TrajectoryReader(tmp_path / "run" / "online.zarr").num_steps == 120, "3 episodes of 40 steps"


def test_offline_dataset_is_never_written(tmp_path, reach_demos):
    before = sorted((p.relative_to(reach_demos), p.stat().st_mtime_ns) for p in reach_demos.rglob("*"))
    cfg = train_config(tmp_path, "algo=rlpd", "task=widowx_reach", f"dataset={reach_demos}",
                       "algo.schedule.online_steps=50", "algo.schedule.utd=1", "algo.agent.ensemble_size=2")
    run_trainer(cfg, tmp_path)
    assert sorted((p.relative_to(reach_demos), p.stat().st_mtime_ns) for p in reach_demos.rglob("*")) == before


def test_checkpoint_restores_weights_optimizers_counters_and_rng(tmp_path, reach_demos):
    cfg = train_config(tmp_path, "algo=calql", "task=widowx_reach", f"dataset={reach_demos}",
                       "algo.schedule.offline_updates=10", "algo.agent.ensemble_size=2")
    trainer, state = run_trainer(cfg, tmp_path)
    path = latest_checkpoint(tmp_path / "run" / "checkpoints")
    fresh = Trainer(cfg, tmp_path / "run2")
    saved = load_checkpoint(path, fresh.agent, fresh.agent.optimizers)
    for (name, a), b in zip(trainer.agent.state_dict().items(), fresh.agent.state_dict().values()):
        assert torch.equal(a, b), name
    for name, opt in trainer.agent.optimizers.items():
        mine, theirs = opt.state_dict()["state"], fresh.agent.optimizers[name].state_dict()["state"]
        assert mine.keys() == theirs.keys()
        for k in mine:
            assert all(torch.equal(mine[k][f], theirs[k][f]) for f in mine[k]), (name, k)
    assert saved["critic_updates"] == state.critic_updates == 10
    assert saved["phase"] == 1 and saved["replay"]["drawn"]["offline"] == 160
    fresh.close()


def test_killed_run_resumes_with_its_counters_replay_and_weights(tmp_path):
    """SIGKILL a `robot-rl train` subprocess after its second checkpoint; resume=true continues from
    the last checkpoint with the same counters, every committed online episode and the same weights."""
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "robot_rl.cli.main", "train", "algo=sac", "task=widowx_reach",
            "algo.agent.hidden=[32,32]", "algo.batch_size=16", "algo.schedule.random_steps=40",
            "algo.schedule.online_steps=100000", "eval.every_env_steps=40", "eval.episodes=1",
            "eval.video=false", f"run_dir={run_dir}"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = run_dir / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(checkpoints.glob("step_*"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.2)
    time.sleep(0.5)  # die somewhere after the checkpoint, mid-episode
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    last = latest_checkpoint(checkpoints)
    assert last is not None
    cfg = train_config(tmp_path, "algo=sac", "task=widowx_reach", "resume=true", f"run_dir={run_dir}",
                       "algo.schedule.random_steps=40", "algo.schedule.online_steps=100000")
    trainer = Trainer(cfg, run_dir)
    state = load_checkpoint(last, Trainer(cfg, tmp_path / "scratch").agent, {})
    assert trainer.resumed_from == last
    assert trainer.state.env_steps == state["env_steps"] >= 80
    assert trainer.state.critic_updates == state["critic_updates"] > 0
    assert trainer.replay.online_steps >= state["env_steps"] - 40, "committed online episodes are kept"
    assert trainer.replay.writer.tail_rows() == 0, "the killed episode's rows are dropped"
    saved = {k: v.clone() for k, v in trainer.agent.state_dict().items()}
    before = trainer.state.critic_updates
    trainer.phases[trainer.state.phase] = trainer.phases[trainer.state.phase].__class__(
        "online", env_steps=trainer.state.progress + 40)
    trainer.run()
    assert trainer.state.critic_updates == before + 40
    changed = [k for k, v in trainer.agent.state_dict().items() if not torch.equal(v, saved[k])]
    assert changed, "training went on from the restored weights"
    trainer.close()


def test_a_finished_run_resumed_with_a_larger_online_budget_trains_on_and_without_one_is_refused(tmp_path, capsys):
    run_dir = tiny_checkpoint(tmp_path / "run")  # SAC: 40 random steps, then 40 online steps, finished
    resume = [o for o in TINY_SAC if "online_steps" not in o] + ["resume=true", f"run_dir={run_dir}"]
    assert main(["train", *resume, "algo.schedule.online_steps=80"]) == 2  # bad input
    assert "finished all its phases" in capsys.readouterr().err
    trainer = Trainer(train_config(tmp_path, *resume, "algo.schedule.online_steps=120"), run_dir)
    assert (trainer.state.phase, trainer.state.progress) == (1, 40), "the online phase reopens after its 40 steps"
    state = trainer.run()
    assert state.env_steps == 120 and state.phase == 2
    assert [r["env_steps"] for r in read_evaluations(run_dir)][-1] == 120
    trainer.close()


def test_train_and_eval_commands_write_the_run_folder(tmp_path, reach_demos, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "algo=calql", "task=widowx_reach", f"dataset={reach_demos}", f"run_dir={run_dir}",
                 "algo.schedule.offline_updates=5", "algo.agent.hidden=[32,32]", "algo.batch_size=16",
                 "algo.agent.ensemble_size=2", "eval.episodes=1"]) == 0
    out = capsys.readouterr().out
    assert "evaluation success" in out and "run folder" in out
    for name in ("config.yaml", "evaluations.csv", "checkpoints/latest", "online.zarr"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    videos = list((run_dir / "videos").glob("*.mp4"))
    assert videos and videos[0].stat().st_size > 1000
    eval_dir = tmp_path / "eval"
    assert main(["eval", f"checkpoint={run_dir}", "episodes=2", "video=true", "video_episodes=1",
                 f"run_dir={eval_dir}", "sim.dynamics=perturbed"]) == 0
    out = capsys.readouterr().out
    assert "success rate" in out and "over 2 episodes" in out
    assert (eval_dir / "rollouts.mp4").stat().st_size > 1000


@pytest.mark.parametrize("overrides,message", [
    (["algo=rlpd", "task=widowx_reach"], "give dataset=<store path>"),
    (["algo=sac", "task=widowx_reach", "algo.agent.ensemble_sise=3"], "Could not override 'algo.agent.ensemble_sise'"),
    (["algo=sac", "task=widowx_reach", "algo.agent.target_subset=3"], "target_subset"),
    (["algo=dqn"], "algo"),
    (["algo=sac", "task=widowx_reach", "algo.schedule.random_steps=500", "algo.schedule.online_steps=100"],
     "algo.schedule.random_steps=500 must be between 0 and algo.schedule.online_steps=100"),
    (["algo=sac", "task=widowx_fly"], "task='fly' is unknown"),
    (["resume=true", "run_dir=/nonexistent/run"], "config.yaml does not exist"),
])
def test_bad_train_input_is_refused_with_the_key_and_the_fix(tmp_path, overrides, message, capsys):
    if not any(o.startswith("run_dir") for o in overrides):
        overrides.append(f"run_dir={tmp_path / 'run'}")
    assert main(["train", *overrides]) == 2
    assert message in capsys.readouterr().err


def test_dataset_from_another_task_is_refused(tmp_path, reach_demos, capsys):
    assert main(["train", "algo=calql", "task=widowx_pick_place", f"dataset={reach_demos}",
                 f"run_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "task_state" in err and "another robot or task" in err
    np.testing.assert_equal(TrajectoryReader(reach_demos).num_episodes, 4)


def test_camera_observations_and_action_chunks_train_end_to_end(tmp_path):
    cfg = train_config(tmp_path, "algo=sac", "task=widowx_reach", "cameras=[front]", "image_size=[32,32]",
                       "algo.agent.chunk=3", "algo.schedule.random_steps=40", "algo.schedule.online_steps=100")
    cycles = []
    trainer, state = run_trainer(cfg, tmp_path, cycles)
    assert state.critic_updates == len(cycles) > 0
    assert trainer.agent.critic.net.linears[0].weight.shape[1] == 14 + 3 + 50 + 3 * 7, "state, camera features, chunk"
    assert trainer.agent.act({"state": np.zeros((2, 14), np.float32), "task_state": np.zeros((2, 3), np.float32),
                              "front": np.zeros((2, 32, 32, 3), np.uint8)}).shape == (2, 3, 7)
    reader = TrajectoryReader(tmp_path / "run" / "online.zarr")
    assert reader.gather("front", np.arange(3)).shape == (3, 32, 32, 3)
