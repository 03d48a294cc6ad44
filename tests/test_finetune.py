"""`robot-rl finetune` end to end with real processes: the learner, and the actor as the ROS 2 graph on
the twin (driver, policy node, recorder over DDS on loopback) or as the fast twin actor; a real zarr
store on disk between them. Budgets are tiny: these check the plumbing, not the learning."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from learner_helpers import demo_store, start_finetune
from robot_rl.datasets import TrajectoryReader
from robot_rl.datasets.repair import validate
from ros_helpers import Operator
from ros_helpers import wait_for as poll_until

wait_for = partial(poll_until, period=0.2)  # the conditions open stores and read logs: poll gently
REPO = Path(__file__).resolve().parents[1]
ROBOT_RL = str(REPO / ".venv" / "bin" / "robot-rl")
TINY = ["robot=widowx", "task=reach", "algo=wsrl", "algo.agent.hidden=[32,32]", "algo.agent.ensemble_size=2",
        "algo.batch_size=16", "algo.schedule.offline_updates=20", "algo.schedule.utd=1", "eval.episodes=1", "eval.every_updates=0",
        "threads=1", "grace_s=3"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return demo_store(tmp_path_factory.mktemp("finetune") / "reach.zarr", episodes=3)


def finetune(*overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([ROBOT_RL, "finetune", *overrides], capture_output=True, text=True, timeout=timeout)


def checkpoint_state(run: Path) -> dict:
    """The newest checkpoint's state.json ({"env_steps": -1} before the first one)."""
    try:
        latest = (run / "checkpoints" / "latest").read_text().strip()
        return json.loads((run / "checkpoints" / latest / "state.json").read_text())
    except FileNotFoundError:  # none yet, or pruned between the two reads
        return {"env_steps": -1}


@pytest.fixture(scope="module")
def franka_dataset(tmp_path_factory) -> Path:
    return demo_store(tmp_path_factory.mktemp("finetune_franka") / "lift.zarr", task="lift", episodes=2, robot="franka")


@pytest.mark.parametrize("robot, task", [("widowx", "reach"), ("franka", "lift")])
def test_the_ros_actor_on_the_twin_feeds_the_learner_and_reloads_its_checkpoints(tmp_path, request, robot, task):
    run = tmp_path / "run"
    dataset = request.getfixturevalue(f"{robot}_dataset" if robot != "widowx" else "dataset")
    done = finetune(*TINY, f"robot={robot}", f"task={task}", f"dataset={dataset}", "backend=twin", "realtime=true", "max_steps=10",
                    "algo.schedule.warmup_steps=10", "algo.schedule.online_steps=40", "publish_every=10",
                    "eval.every_env_steps=0", "eval.video=false", f"run_dir={run}")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert "[bringup] learner finished: stopping the graph" in done.stdout
    assert validate(run / "online.zarr") == []
    reader = TrajectoryReader(run / "online.zarr")
    assert reader.num_episodes >= 4 and {reader.episode_info(i)["source"] for i in range(4)} == {"policy"}
    state = checkpoint_state(run)
    assert state["env_steps"] == 40 and state["actor"]["finished"]
    assert state["critic_updates"] == 20 + 30  # offline, then one per consumed step after the warmup
    reloads = re.findall(rf"\[{robot}\] .*now running checkpoint (\S+)", done.stdout)
    assert reloads, done.stdout[-4000:]  # the policy node switched to a checkpoint the learner published online
    report = (run / "report" / "report.md").read_text()
    assert "| pretrained only |" in report and "| fine-tuned | 40 |" in report
    assert (run / "report" / "success.png").stat().st_size > 0


@pytest.fixture(scope="module")
def car_dataset(tmp_path_factory) -> Path:
    return demo_store(tmp_path_factory.mktemp("finetune_car") / "goal.zarr", task="goal", episodes=2, robot="rc_car")


CAR = [o.replace("robot=widowx", "robot=rc_car").replace("task=reach", "task=goal") for o in TINY] + ["rate=20"]


def test_the_ros_actor_on_the_rc_car_twin_feeds_the_learner(tmp_path, car_dataset):
    """The car's robot process with the fine-tuning policy: its 2-D actions through the car's safety core,
    episodes into the run's store, the learner's checkpoints reloaded."""
    run = tmp_path / "run"
    done = finetune(*CAR, f"dataset={car_dataset}", "backend=twin", "realtime=true", "max_steps=10",
                    "cameras=[]", "obs_keys=[state,task_state]", "algo.schedule.warmup_steps=10",
                    "algo.schedule.online_steps=40", "publish_every=10", "eval.every_env_steps=0", "eval.video=false",
                    f"run_dir={run}")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert "[bringup] learner finished: stopping the graph" in done.stdout
    assert validate(run / "online.zarr") == []
    reader = TrajectoryReader(run / "online.zarr")
    assert reader.num_episodes >= 4 and {reader.episode_info(i)["source"] for i in range(4)} == {"policy"}
    assert reader.episode(0)["action"].shape[1] == 2
    state = checkpoint_state(run)
    assert state["env_steps"] == 40 and state["actor"]["finished"]
    assert re.findall(r"\[rc_car\] .*now running checkpoint (\S+)", done.stdout), done.stdout[-4000:]


def started_pid(log: Path, name: str) -> int:
    found = re.search(rf"\[bringup\] started {name} \(pid (\d+)\)", log.read_text())
    return int(found.group(1)) if found else 0


def stop(popen: subprocess.Popen) -> None:
    if popen.poll() is None:
        os.killpg(popen.pid, signal.SIGINT)
        popen.wait(timeout=30)


def test_the_ros_actor_keeps_acting_while_a_killed_learner_resumes(tmp_path, dataset):
    """The two sides started on their own, as on two machines. SIGKILL the learner after it went online:
    the actor keeps committing episodes with the last policy, and the restarted learner resumes from its
    last checkpoint and consumes them."""
    run = tmp_path / "run"
    common = [f"run_dir={run}", "grace_s=3"]
    learner_log, actor_log = tmp_path / "learner.log", tmp_path / "actor.log"
    learner = start_finetune(*TINY, f"dataset={dataset}", "backend=twin", "max_steps=10", "algo.schedule.warmup_steps=0",
                    "algo.schedule.online_steps=80", "publish_every=10", "eval.every_env_steps=0",
                    "eval.video=false", "role=learner", *common, log=learner_log)
    wait_for(lambda: (run / "config.yaml").exists(), 60, "the learner's config")
    actor = start_finetune("role=actor", *common, log=actor_log)
    try:
        wait_for(lambda: started_pid(learner_log, "learner"), 30, "the learner process")
        wait_for(lambda: checkpoint_state(run)["env_steps"] >= 20, 120, "an online checkpoint")
        os.kill(started_pid(learner_log, "learner"), signal.SIGKILL)
        learner.wait(timeout=30)
        assert learner.returncode == 1 and "learner exited with status -9" in learner_log.read_text()
        before = checkpoint_state(run)
        committed = TrajectoryReader(run / "online.zarr").num_episodes
        wait_for(lambda: TrajectoryReader(run / "online.zarr").num_episodes >= committed + 2, 60,
                 "the actor's episodes while the learner is down")

        resumed_log = tmp_path / "learner2.log"
        learner = start_finetune("role=learner", "resume=true", *common, log=resumed_log)
        learner.wait(timeout=180)
        assert learner.returncode == 0, resumed_log.read_text()[-4000:]
        assert f"resuming from {run / 'checkpoints'}" in resumed_log.read_text()
    finally:
        stop(actor)
        stop(learner)
    after = checkpoint_state(run)
    assert after["env_steps"] == 80 and after["actor"]["finished"]
    assert after["critic_updates"] == 20 + 80 > before["critic_updates"]
    assert validate(run / "online.zarr") == []
    assert (run / "report" / "report.md").exists()


def test_the_learner_waits_for_a_killed_fast_actor_and_picks_up_its_successor(tmp_path, dataset):
    """realtime=false: SIGKILL the actor mid-run (its open episode is lost, nothing else); the learner
    waits without failing, and finishes on the episodes of the restarted actor."""
    run = tmp_path / "run"
    common = [f"run_dir={run}", "grace_s=3"]
    learner_log, actor_log = tmp_path / "learner.log", tmp_path / "actor.log"
    learner = start_finetune(*TINY, f"dataset={dataset}", "realtime=false", "algo.schedule.warmup_steps=0",
                    "algo.schedule.online_steps=600", "publish_every=40", "eval.every_env_steps=0",
                    "eval.video=false", "max_lag=40", "role=learner", *common, log=learner_log)
    wait_for(lambda: (run / "config.yaml").exists(), 60, "the learner's config")
    actor = start_finetune("role=actor", *common, log=actor_log)
    try:
        wait_for(lambda: started_pid(actor_log, "actor"), 30, "the actor process")
        wait_for(lambda: checkpoint_state(run)["env_steps"] >= 120,
                 180, "an online checkpoint")
        os.kill(started_pid(actor_log, "actor"), signal.SIGKILL)
        actor.wait(timeout=30)
        committed = TrajectoryReader(run / "online.zarr").num_steps
        time.sleep(3.0)  # the learner consumes what was committed, then waits
        assert learner.poll() is None and checkpoint_state(run)["env_steps"] <= committed
        actor = start_finetune("role=actor", *common, log=tmp_path / "actor2.log")
        learner.wait(timeout=240)
        assert learner.returncode == 0, learner_log.read_text()[-4000:]
    finally:
        stop(actor)
        stop(learner)
    after = checkpoint_state(run)
    assert after["env_steps"] == 600 and after["critic_updates"] == 20 + 600 and after["actor"]["finished"]
    assert validate(run / "online.zarr") == []  # the killed actor's open episode left no damage
    assert TrajectoryReader(run / "online.zarr").num_steps >= 600


def label_two_episodes(operator: Operator, finetuning: subprocess.Popen, log: Path) -> None:
    """Once the policy acts: start an episode, label it a success after three applied commands, start a
    second (it ends at max_steps), then wait for the job to end with status 0."""
    wait_for(lambda: "[policy]: policy from" in log.read_text(), 120, "the policy node to act (after pretraining)")
    wait_for(lambda: operator.call("start_episode").success, 30, "the first episode to start")
    started = len(operator.applied)
    wait_for(lambda: len(operator.applied) >= started + 3, 10, "three commands into the first episode")
    label = operator.call("success_episode")
    assert label.success, label.message
    wait_for(lambda: operator.call("start_episode").success, 30, "the second episode to start")
    finetuning.wait(timeout=120)
    assert finetuning.returncode == 0, log.read_text()[-4000:]


def test_on_the_dynamixel_protocol_twin_the_operator_labels_the_policys_episodes(tmp_path, dataset, spinner):
    """The hardware path: the real dynamixel-sdk driver against the emulated servo chain, the policy node on
    topics, the recorder without a twin task. The operator (this test, through the recorder's services)
    starts each episode and labels one a success; the learner consumes them with obs_keys=[state]."""
    from robot_rl.sim.dynamixel import EmulatedWidowXProcess

    run = tmp_path / "run"
    # In its own process, as a real chain: in this one its answers would wait on the test's own threads.
    arm = EmulatedWidowXProcess().start()
    operator = Operator(spinner, "operator")
    spinner.start()
    finetuning = start_finetune(*TINY, f"dataset={dataset}", "backend=dynamixel", f"port={arm.port}", "obs_keys=[state]",
                       "cameras=[]", "teleop=none", "max_steps=30", "algo.schedule.warmup_steps=0",
                       "algo.schedule.online_steps=16", "publish_every=8", "eval.every_env_steps=0", "eval.video=false",
                       f"run_dir={run}", log=tmp_path / "finetune.log")
    try:
        label_two_episodes(operator, finetuning, tmp_path / "finetune.log")
    finally:
        stop(finetuning)
        arm.stop()
    reader = TrajectoryReader(run / "online.zarr")
    assert "task_state" not in reader.spec.state and validate(run / "online.zarr") == []
    labelled = reader.episode(0)
    assert reader.episode_info(0)["success"] is True and reader.episode_info(0)["source"] == "policy"
    assert labelled["reward"][-1] == 1.0 and labelled["terminated"][-1] and labelled["reward"][:-1].sum() == 0
    assert reader.episode_info(1)["ended_by"] == "max_steps" and reader.episode_info(1)["success"] is None
    assert checkpoint_state(run)["env_steps"] == 16 and checkpoint_state(run)["actor"]["finished"]


def test_on_the_vesc_protocol_twin_the_operator_labels_the_car_policys_episodes(tmp_path, car_dataset, spinner):
    """The car's hardware path: the real VESC driver against the VESC twin, the policy node on topics (the
    state from joint_states), the recorder without a twin task; the operator (this test, through the
    recorder's services) starts each episode and labels one a success."""
    from robot_rl.sim.vesc.process import EmulatedVescProcess

    run = tmp_path / "run"
    vesc = EmulatedVescProcess(seed=3).start()
    operator = Operator(spinner, "car_operator")
    spinner.start()
    finetuning = start_finetune(*CAR, f"dataset={car_dataset}", "backend=vesc", f"port={vesc.port}", "obs_keys=[state]",
                                "cameras=[]", "teleop=none", "max_steps=30", "algo.schedule.warmup_steps=0",
                                "algo.schedule.online_steps=16", "publish_every=8", "eval.every_env_steps=0",
                                "eval.video=false", f"run_dir={run}", log=tmp_path / "finetune.log")
    try:
        label_two_episodes(operator, finetuning, tmp_path / "finetune.log")
        assert vesc.rpm_log(), "the policy's actions never reached the VESC"
    finally:
        stop(finetuning)
        vesc.stop()
    reader = TrajectoryReader(run / "online.zarr")
    assert "task_state" not in reader.spec.state and validate(run / "online.zarr") == []
    labelled = reader.episode(0)
    assert labelled["action"].shape[1] == 2 and reader.episode_info(0)["success"] is True
    assert labelled["reward"][-1] == 1.0 and labelled["terminated"][-1]
    assert reader.episode_info(1)["ended_by"] == "max_steps"
    assert checkpoint_state(run)["env_steps"] == 16 and checkpoint_state(run)["actor"]["finished"]


@pytest.mark.parametrize("robot, task", [("widowx", "reach"), ("franka", "lift")])
def test_without_a_task_finetune_runs_the_robots_default_task(tmp_path, request, robot, task):
    from robot_rl.cli.finetune import resolve

    store = request.getfixturevalue(f"{robot}_dataset" if robot != "widowx" else "dataset")
    cfg = resolve([f"robot={robot}", f"dataset={store}", f"run_dir={tmp_path / 'run'}"])
    assert cfg.task == task  # checked against the dataset's spec: the robot's task, not another robot's


FRANKA = [o.replace("robot=widowx", "robot=franka").replace("task=reach", "task=lift") for o in TINY]


def test_on_franky_sim_the_operator_labels_the_franka_policys_episodes(tmp_path, franka_dataset, franky_sim_host,
                                                                      spinner):
    """The Franka's hardware path: the Franka process through libfranka to franky-sim, the policy node on
    topics, the recorder without a twin task; the operator (this test, through the recorder's services)
    starts each episode and labels one a success; the learner consumes them with obs_keys=[state]."""
    run, log = tmp_path / "run", tmp_path / "finetune.log"
    operator = Operator(spinner, "franka_operator")
    spinner.start()
    finetuning = start_finetune(*FRANKA, f"dataset={franka_dataset}", "backend=franky", f"port={franky_sim_host}",
                                "obs_keys=[state]", "cameras=[]", "teleop=none", "max_steps=30",
                                "algo.schedule.warmup_steps=0", "algo.schedule.online_steps=16", "publish_every=8",
                                "eval.every_env_steps=0", "eval.video=false", f"run_dir={run}", log=log)
    try:
        label_two_episodes(operator, finetuning, log)
    finally:
        stop(finetuning)
    assert "backend fault" not in log.read_text(), log.read_text()[-4000:]
    reader = TrajectoryReader(run / "online.zarr")
    assert "task_state" not in reader.spec.state and validate(run / "online.zarr") == []
    labelled = reader.episode(0)
    assert labelled["action"].shape[1] == 7 and reader.episode_info(0)["source"] == "policy"
    assert reader.episode_info(0)["success"] is True and labelled["reward"][-1] == 1.0 and labelled["terminated"][-1]
    assert reader.episode_info(1)["ended_by"] == "max_steps" and reader.episode_info(1)["success"] is None
    joints = np.concatenate([reader.episode(i)["state"][:, :7] for i in range(2)])
    assert np.ptp(joints, axis=0).max() > 1e-3, "the policy's actions never moved the arm in franky-sim"
    assert checkpoint_state(run)["env_steps"] == 16 and checkpoint_state(run)["actor"]["finished"]


def test_bad_finetune_settings_name_the_fix(tmp_path, dataset):
    done = finetune("backend=dynamixel", "realtime=false", f"dataset={dataset}", f"run_dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "needs backend=twin" in done.stderr
    done = finetune("role=observer", f"dataset={dataset}", f"run_dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "role='observer'" in done.stderr
    done = finetune("role=actor", f"run_dir={tmp_path / 'nothing'}")
    assert done.returncode == 2 and "does not exist" in done.stderr
    done = finetune("backend=dynamixel", f"dataset={dataset}", f"run_dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "obs_keys=[state]" in done.stderr  # task_state is twin-only


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_a_sigkilled_actor_is_reported_dead_with_the_restart_command_and_the_restart_finishes(tmp_path, dataset):
    """SIGKILL the fast actor at a random point: the learner says no actor is alive and what to run; the
    README's `role=actor` command then finishes the job and exits by itself, and so does an actor started
    after the learner finished."""
    run = tmp_path / "run"
    common = [f"run_dir={run}", "grace_s=3"]
    learner_log = tmp_path / "learner.log"
    learner = start_finetune(*TINY, f"dataset={dataset}", "realtime=false", "algo.schedule.warmup_steps=0",
                    "algo.schedule.online_steps=320", "publish_every=40", "eval.every_env_steps=0",
                    "eval.video=false", "max_lag=40", "role=learner", *common, log=learner_log)
    wait_for(lambda: (run / "config.yaml").exists(), 60, "the learner's config")
    actor = start_finetune("role=actor", *common, log=tmp_path / "actor.log")
    try:
        wait_for(lambda: started_pid(tmp_path / "actor.log", "actor"), 30, "the actor process")
        kill_at = int(np.random.default_rng().integers(1, 5)) * 40
        wait_for(lambda: checkpoint_state(run)["env_steps"] >= kill_at, 180, f"{kill_at} consumed steps")
        os.kill(started_pid(tmp_path / "actor.log", "actor"), signal.SIGKILL)  # no clean exit: only silence tells
        actor.wait(timeout=30)
        assert "actor exited with status -9" in (run / "logs" / "finetune_actor.log").read_text()
        restart = f"robot-rl finetune role=actor run_dir={run}"
        wait_for(lambda: "no actor is alive" in learner_log.read_text() and restart in learner_log.read_text(),
                 60, "the learner to say that no actor is alive")
        assert learner.poll() is None
        actor = start_finetune("role=actor", *common, log=tmp_path / "actor2.log")  # the README's restart command
        learner.wait(timeout=240)
        assert learner.returncode == 0, learner_log.read_text()[-4000:]
        actor.wait(timeout=60)  # it ends itself once the learner has finished
        assert actor.returncode == 0, (tmp_path / "actor2.log").read_text()[-3000:]
    finally:
        stop(actor)
        stop(learner)
    assert checkpoint_state(run)["env_steps"] == 320 and checkpoint_state(run)["actor"]["finished"]
    assert validate(run / "online.zarr") == []
    late = finetune("role=actor", *common, timeout=120)  # started after the learner finished
    assert late.returncode == 0 and "the learner finished" in late.stdout, late.stdout[-3000:]


@pytest.mark.slow
def test_a_sigkilled_learner_job_takes_its_learner_along_and_the_readme_resume_finishes(tmp_path, dataset):
    """SIGKILL `robot-rl finetune role=learner` itself at a random point: its learner process dies with it
    (no orphan), the supervisor's lines are in its log, and `role=learner resume=true` finishes the job; the
    actor, started first, exits by itself when the learner has finished."""
    run = tmp_path / "run"
    common = [f"run_dir={run}", "grace_s=3"]
    learner = start_finetune(*TINY, f"dataset={dataset}", "realtime=false", "algo.schedule.warmup_steps=0",
                    "algo.schedule.online_steps=240", "publish_every=40", "eval.every_env_steps=0",
                    "eval.video=false", "max_lag=40", "role=learner", *common, log=tmp_path / "learner.log")
    wait_for(lambda: (run / "config.yaml").exists(), 60, "the learner's config")
    actor = start_finetune("role=actor", *common, log=tmp_path / "actor.log")
    try:
        wait_for(lambda: started_pid(tmp_path / "learner.log", "learner"), 30, "the learner process")
        child = started_pid(tmp_path / "learner.log", "learner")
        kill_at = int(np.random.default_rng().integers(0, 4)) * 40
        wait_for(lambda: checkpoint_state(run)["env_steps"] >= kill_at, 180, f"{kill_at} consumed steps")
        os.kill(learner.pid, signal.SIGKILL)
        learner.wait(timeout=30)
        wait_for(lambda: pid_gone(child), 30, "the learner process to die with its supervisor")
        assert f"started learner (pid {child})" in (run / "logs" / "finetune_learner.log").read_text()
        learner = start_finetune("role=learner", "resume=true", *common, log=tmp_path / "learner2.log")
        learner.wait(timeout=240)
        assert learner.returncode == 0, (tmp_path / "learner2.log").read_text()[-4000:]
        actor.wait(timeout=60)
        assert actor.returncode == 0, (tmp_path / "actor.log").read_text()[-3000:]
    finally:
        stop(actor)
        stop(learner)
    assert checkpoint_state(run)["env_steps"] == 240 and checkpoint_state(run)["actor"]["finished"]
    assert "[bringup] actor finished" in (tmp_path / "actor.log").read_text()
