"""`robot-rl bringup`: the node graphs, the plain-process supervisor, and the WidowX robot process's options.

The ROS 2 launch files need the `launch` package, which has no pip wheel: here they are only parsed; the
graphs they build are the ones `bringup` runs (robot_rl.launch.graphs), tested below."""
from __future__ import annotations

import ast
import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.drivers.widowx.node import WaitForListener, parse_args
from robot_rl.launch.graphs import Options, Process, build_graph, options_from_strings
from robot_rl.launch.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[1]


# --- graphs -----------------------------------------------------------------------------------------

def test_teleop_collect_on_the_twin_is_a_recorder_and_one_robot_process():
    graph = build_graph("teleop_collect", Options(teleop="scripted", out="wx.zarr", episodes=3, task="reach"))
    assert [p.name for p in graph] == ["recorder", "widowx"]
    recorder, robot = graph
    assert recorder.completes_job and not robot.completes_job
    assert recorder.args[recorder.args.index("--episodes") + 1] == "3"
    assert recorder.args[recorder.args.index("--out") + 1] == "wx.zarr"
    # cameras, task state and the scripted operator share the twin's process
    assert {"--twin-task", "--enable-torque"} <= set(robot.args)
    assert robot.args[robot.args.index("--cameras") + 1] == "front"
    assert int(robot.args[robot.args.index("--scripted-episodes") + 1]) > 3  # replays refused episodes
    assert parse_args(list(robot.args)).task == "reach"  # the robot process accepts what the graph gives it


def test_teleop_collect_on_hardware_runs_cameras_and_the_device_as_processes():
    options = Options(backend="dynamixel", teleop="keyboard", out="wx.zarr", cameras=("front", "wrist"),
                      camera_devices={"front": "/dev/video0", "wrist": "2"}, port="/dev/ttyUSB3")
    graph = {p.name: p for p in build_graph("teleop_collect", options)}
    assert set(graph) == {"recorder", "widowx", "camera_front", "camera_wrist", "teleop"}
    assert "--twin-task" not in graph["widowx"].args and "/dev/ttyUSB3" in graph["widowx"].args
    assert graph["camera_wrist"].args[:2] == ("--source", "2")
    assert graph["teleop"].terminal  # the keyboard keeps the terminal
    assert not any(p.terminal for name, p in graph.items() if name != "teleop")


@pytest.mark.parametrize("robot, task", [("widowx", "reach"), ("franka", "lift"), ("rc_car", "goal")])
def test_without_a_task_the_graph_runs_the_robots_default_task(robot, task):
    from robot_rl.cli.bringup import graph_options

    cfg, options = graph_options("teleop_collect", [f"robot={robot}", "teleop=scripted", "out=x.zarr"])
    assert cfg.task == options.task == task  # the run's saved config names it too
    recorder, robot_process = build_graph("teleop_collect", options)[:2]
    assert recorder.args[recorder.args.index("--task") + 1] == task
    assert robot_process.args[robot_process.args.index("--task") + 1] == task
    assert graph_options("deploy", [f"robot={robot}", "checkpoint=run"])[1].task == task


@pytest.mark.parametrize("graph, options, message", [
    ("teleop_collect", Options(), "needs out="),
    ("teleop_collect", Options(backend="dynamixel", teleop="scripted", out="x"), "use backend=twin"),
    ("teleop_collect", Options(backend="dynamixel", out="x"), "camera_devices.front="),
    ("deploy", Options(), "needs checkpoint="),
    ("fly", Options(), "graph='fly' is unknown"),
])
def test_bad_graph_options_name_the_fix(graph, options, message):
    with pytest.raises(ValueError, match=message):
        build_graph(graph, options)


@pytest.mark.parametrize("field, value, message", [
    ("backend", "usb", "backend='usb' is unknown for robot 'widowx': expected one of twin, dynamixel"),
    ("teleop", "mouse", "teleop='mouse' is unknown"),
    ("rate", 0.0, "positive control rate"),
    ("episodes", -1, "episodes=-1"),
])
def test_bad_options_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        Options(**{field: value})


def test_deploy_on_the_twin_is_one_process_that_ends_the_job():
    (policy,) = build_graph("deploy", Options(checkpoint="runs/train/x", steps=20))
    assert policy.completes_job and policy.module == "robot_rl.drivers.policy_node"
    assert policy.args[policy.args.index("--steps") + 1] == "20"


def test_deploy_on_hardware_reads_the_robot_and_cameras_from_their_topics():
    from robot_rl.drivers.policy_node import parse_args as policy_args

    options = Options(backend="dynamixel", checkpoint="run", camera_devices={"front": "0"})
    graph = {p.name: p for p in build_graph("deploy", options)}
    assert set(graph) == {"widowx", "camera_front", "policy"}
    args = policy_args(list(graph["policy"].args))
    assert (args.observation, args.cameras, args.checkpoint) == ("topics", ["front"], "run")
    chunked = build_graph("deploy", Options(checkpoint="run", execute_steps=2))[0]
    assert policy_args(list(chunked.args)).execute_steps == 2
    blended = build_graph("deploy", Options(checkpoint="run", temporal_ensemble=True))[0]
    assert policy_args(list(blended.args)).temporal_ensemble


def test_the_finetune_actor_on_the_twin_is_a_recorder_and_the_robot_with_its_policy():
    from robot_rl.drivers.recorder_node import parse_args as recorder_args
    from robot_rl.launch.graphs import finetune_actor

    recorder, robot = finetune_actor(Options(task="reach", cameras=(), checkpoint="run", out="run/online.zarr",
                                             steps=40, dynamics="perturbed"))
    assert not recorder.completes_job and not robot.completes_job  # the learner ends the job
    args = recorder_args(list(recorder.args))
    assert (args.out, args.max_steps, args.source, args.auto_start, args.cameras) == \
           ("run/online.zarr", 40, "policy", True, [])
    robot_args = parse_args(list(robot.args))
    assert (robot_args.policy, robot_args.dynamics, robot_args.twin_task) == ("run", "perturbed", True)


def test_the_finetune_actor_on_hardware_waits_for_the_operator_and_the_learner():
    from robot_rl.drivers.policy_node import parse_args as policy_args
    from robot_rl.drivers.recorder_node import parse_args as recorder_args
    from robot_rl.launch.graphs import finetune_actor

    graph = {p.name: p for p in finetune_actor(Options(backend="dynamixel", checkpoint="run", out="run/online.zarr",
                                                       steps=40, camera_devices={"front": "0"}))}
    assert set(graph) == {"recorder", "widowx", "camera_front", "policy", "operator"}
    assert not recorder_args(list(graph["recorder"].args)).auto_start
    operator = graph["operator"]
    assert operator.terminal and "--buttons-only" in operator.args  # the keyboard labels; the policy moves
    policy = policy_args(list(graph["policy"].args))
    assert (policy.checkpoint, policy.observation, policy.wait_for_acting, policy.stochastic) == \
           ("run", "topics", True, True)
    assert policy.poll_checkpoints > 0
    with pytest.raises(ValueError, match="steps=<episode length>"):
        finetune_actor(Options(checkpoint="run", out="x.zarr"))


def test_launch_arguments_parse_to_the_same_options():
    options = options_from_strings({"backend": "dynamixel", "cameras": "front,wrist", "rate": "10",
                                    "camera_devices": "front=/dev/video0,wrist=2", "episodes": "4", "steps": "",
                                    "out": "/data/x.zarr", "checkpoint": ""})
    assert options == Options(backend="dynamixel", cameras=("front", "wrist"), rate=10.0, episodes=4,
                              camera_devices={"front": "/dev/video0", "wrist": "2"}, out="/data/x.zarr")
    with pytest.raises(ValueError, match="unknown arguments"):
        options_from_strings({"speed": "1"})
    with pytest.raises(ValueError, match="name=device pairs"):
        options_from_strings({"camera_devices": "/dev/video0"})


@pytest.mark.parametrize("name", ["teleop_collect.launch.py", "deploy.launch.py", "ros_launch.py"])
def test_launch_files_parse(name):
    tree = ast.parse((REPO / "launch" / name).read_text())
    assert any(isinstance(node, ast.FunctionDef) for node in tree.body)


# --- the supervisor, with small Python programs as the graph's processes --------------------------

NODE = """
import signal, sys, time
name = sys.argv[1]
def stop(signum, frame):
    print(f"{name} got {signal.Signals(signum).name}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
print(f"{name} up", flush=True)  # after the handler: a SIGINT right after "up" must reach it
time.sleep(60)
"""
FINISHES = "import sys, time; time.sleep(0.5); print('done'); sys.exit(int(sys.argv[1]))"
STUBBORN = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


@pytest.fixture
def programs(tmp_path):
    folder = tmp_path / "programs"
    folder.mkdir()
    for name, text in (("node_prog", NODE), ("finishes_prog", FINISHES), ("stubborn_prog", STUBBORN)):
        (folder / f"{name}.py").write_text(textwrap.dedent(text))
    return {"PYTHONPATH": str(folder)}


def supervise(tmp_path, processes, env, **kwargs):
    lines: list[str] = []
    supervisor = Supervisor(processes, tmp_path / "logs", echo=lines.append, env=env, **kwargs)
    return supervisor, supervisor.run(), lines


def test_a_finished_job_stops_the_other_processes_with_sigint(tmp_path, programs):
    graph = [Process("node", "node_prog", ("node",)), Process("job", "finishes_prog", ("0",), completes_job=True)]
    supervisor, status, lines = supervise(tmp_path, graph, programs)
    assert status == 0
    assert supervisor.exit_codes == {"job": 0, "node": 0}
    assert "[node] node got SIGINT" in lines and "[job] done" in lines
    assert (tmp_path / "logs" / "node.log").read_text().splitlines() == ["node up", "node got SIGINT"]


def test_a_failing_process_stops_the_graph_and_is_named(tmp_path, programs):
    graph = [Process("node", "node_prog", ("node",)), Process("driver", "finishes_prog", ("3",))]
    supervisor, status, lines = supervise(tmp_path, graph, programs)
    assert status == 1
    assert any("driver exited with status 3" in line for line in lines)
    assert supervisor.exit_codes["node"] == 0  # still stopped cleanly


def test_a_process_ignoring_sigint_is_terminated_after_the_grace_period(tmp_path, programs):
    graph = [Process("stubborn", "stubborn_prog"), Process("job", "finishes_prog", ("0",), completes_job=True)]
    started = time.monotonic()
    supervisor, status, _ = supervise(tmp_path, graph, programs, grace_s=0.5)
    assert status == 0 and supervisor.exit_codes["stubborn"] == -signal.SIGTERM
    assert time.monotonic() - started < 10


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig, preexec", [(signal.SIGTERM, None), (signal.SIGINT, _ignore_sigint)],
                         ids=["sigterm", "sigint_when_started_with_sigint_ignored"])
def test_a_signal_to_the_supervisor_stops_every_node(tmp_path, programs, sig, preexec):
    """SIGTERM is what a service manager or a container stop sends; SIGINT must work too when the supervisor
    was started as a background job or under nohup, which start it with SIGINT ignored. The nodes get SIGINT
    and the status is 130."""
    script = tmp_path / "run_graph.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from robot_rl.launch.graphs import Process
        from robot_rl.launch.supervisor import run_graph
        sys.exit(run_graph([Process("a", "node_prog", ("a",)), Process("b", "node_prog", ("b",))],
                           {str(tmp_path / "logs")!r}, env={programs!r}))
    """))
    import subprocess

    supervisor = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, preexec_fn=preexec)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(supervisor.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while not {"[a] a up\n", "[b] b up\n"} <= set(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    supervisor.send_signal(sig)
    assert supervisor.wait(timeout=30) == 130
    reader.join(timeout=5)
    assert {"[a] a got SIGINT\n", "[b] b got SIGINT\n"} <= set(seen), seen


# --- the WidowX robot process ------------------------------------------------------------------------

def test_twin_only_options_are_refused_on_hardware():
    with pytest.raises(SystemExit):
        parse_args(["--backend", "dynamixel", "--cameras", "front"])
    assert parse_args(["--cameras", "front,wrist"]).cameras == ("front", "wrist")


def test_the_scripted_operator_waits_for_a_listener_and_then_settles():
    class Operator:
        reads = 0

        def read(self):
            self.reads += 1
            return "expert input"

    now = [0.0]
    waiting = WaitForListener(Operator(), settle_s=2.0, clock=lambda: now[0])
    listening = [False]
    waiting.listening = lambda: listening[0]
    assert waiting.read().start is False and waiting.device.reads == 0
    now[0], listening[0] = 5.0, True
    assert waiting.read().start is False  # heard at t=5: settle until t=7
    now[0] = 7.0
    assert waiting.read() == "expert input"


# --- end to end: `robot-rl bringup teleop_collect` on the twin, real nodes in real processes -----------

@pytest.mark.parametrize("robot, task", [("widowx", "reach"), ("franka", "lift"), ("rc_car", "goal")])
def test_bringup_teleop_collect_with_the_scripted_operator_records_valid_episodes(tmp_path, robot, task):
    import subprocess

    from robot_rl.datasets import TrajectoryReader
    from robot_rl.datasets.repair import validate
    from robot_rl.sim import make_env

    out = tmp_path / f"{robot}.zarr"
    done = subprocess.run([str(REPO / ".venv" / "bin" / "robot-rl"), "bringup", "teleop_collect", f"robot={robot}",
                           "backend=twin", "teleop=scripted", f"task={task}", "episodes=2", f"out={out}",
                           f"run_dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[bringup] recorder finished: stopping the graph" in done.stdout
    assert validate(out) == []
    reader = TrajectoryReader(out)
    assert reader.num_episodes == 2
    twin = make_env(robot, task, cameras=("front",)).unwrapped.embodiment
    assert {k: (v.shape, v.dtype) for k, v in reader.spec.keys().items()} == \
           {k: (v.shape, v.dtype) for k, v in twin.keys().items()}
    assert {reader.episode_info(i)["source"] for i in range(2)} == {"scripted"}
    assert f"[bringup] {robot} stopped (status 0)" in done.stdout  # SIGINT: torque off (the car: braked), a clean exit
    assert (tmp_path / "run" / "logs" / "recorder.log").exists()
    if robot == "rc_car":  # the planner drove: its normalized actions, through the car's safety core
        actions = np.concatenate([reader.episode(i)["action"] for i in range(2)])
        assert actions.shape[1] == 2 and np.abs(actions).max() <= 1.0
        assert actions[:, 1].max() > 0.1, "the planner's throttle never reached the store"
        speeds = np.concatenate([reader.episode(i)["state"][:, 0] for i in range(2)])
        assert speeds.max() > 0.2, "the car never moved"


@pytest.mark.parametrize("robot, task", [("widowx", "reach"), ("franka", "lift")])
def test_bringup_deploy_on_the_twin_runs_a_learner_checkpoint_and_reports_latency(tmp_path, robot, task):
    import subprocess

    from learner_helpers import tiny_checkpoint

    run = tiny_checkpoint(tmp_path / "train", f"task={robot}_{task}")
    done = subprocess.run([str(REPO / ".venv" / "bin" / "robot-rl"), "bringup", "deploy", f"robot={robot}",
                           f"task={task}", "backend=twin", f"checkpoint={run}", "steps=10",
                           f"run_dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[policy] success:" in done.stdout and "after 10 actions" in done.stdout
    assert "[policy] inference latency: p50" in done.stdout
    assert "[policy] command latency: p50" in done.stdout  # the round trip to the driver's ee_command_applied
    assert "[bringup] policy finished: stopping the graph" in done.stdout


def test_the_scripted_operator_alone_plays_its_episodes_and_exits():
    """`python -m robot_rl.drivers.teleop --device scripted`: no recorder, so nothing to wait for."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "robot_rl.drivers.teleop", "--device", "scripted", "--task", "reach",
                           "--episodes", "2"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("episode start") == 2 and "scripted episodes (outcome, actions): [(" in done.stderr


def test_bringup_deploy_on_franky_drives_franky_sim_from_topics_and_reports_latency(tmp_path, franky_sim_host, spinner):
    """backend=franky: the Franka process through libfranka to franky-sim, the policy node reading its topics;
    Ctrl-C ends the job, every process with status 0, and the policy node prints its latency report."""
    import subprocess

    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from learner_helpers import tiny_checkpoint
    from robot_rl.drivers.driver_node import COMMAND_QOS
    from ros_helpers import wait_for

    run = tiny_checkpoint(tmp_path / "train", "task=franka_lift", "obs_keys=[state]")  # no task_state on hardware
    applied = []
    listener = spinner.add(Node("deploy_listener", context=spinner.executor.context))
    listener.create_subscription(JointState, "ee_command_applied", applied.append, COMMAND_QOS)
    spinner.start()
    log = tmp_path / "bringup.log"
    process = subprocess.Popen([str(REPO / ".venv" / "bin" / "robot-rl"), "bringup", "deploy", "robot=franka", "task=lift",
                                "backend=franky", f"port={franky_sim_host}", "cameras=[]", f"checkpoint={run}",
                                f"run_dir={tmp_path / 'run'}"], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        wait_for(lambda: len(applied) >= 20 or process.poll() is not None, 120.0, "the policy's commands applied")
        assert process.poll() is None, log.read_text()[-3000:]
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    out = log.read_text()
    assert "[policy] command latency: p50" in out, out[-3000:]
    assert "[bringup] franka stopped (status 0)" in out and "[bringup] policy stopped (status 0)" in out, out[-3000:]
    assert "backend fault" not in out, out[-3000:]


def test_bringup_teleop_collect_on_franky_records_the_operators_episodes_from_franky_sim(tmp_path, franky_sim_host,
                                                                                        spinner):
    """backend=franky teleop=none: the Franka process through libfranka to franky-sim and the recorder, the
    operator (this test) driving ee_delta_command and starting and ending each episode at the recorder's
    services. Two kept episodes end the job; the store holds them as the arm's state moved under the commands."""
    import subprocess

    from robot_rl.datasets import TrajectoryReader
    from robot_rl.datasets.repair import validate
    from robot_rl.sim.specs import embodiment_spec
    from ros_helpers import Operator, wait_for

    operator = Operator(spinner, "franka_operator", applied_topic="ee_command_applied")
    spinner.start()
    out, log = tmp_path / "franka_real.zarr", tmp_path / "bringup.log"
    process = subprocess.Popen([str(REPO / ".venv" / "bin" / "robot-rl"), "bringup", "teleop_collect", "robot=franka",
                                "task=lift", "backend=franky", f"port={franky_sim_host}", "teleop=none", "cameras=[]",
                                "episodes=2", f"out={out}", f"run_dir={tmp_path / 'run'}"], stdout=open(log, "w"),
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        operator.drive([0.0, 0.0, -0.2, 0.0, 0.0, 0.0, 1.0], rate_hz=10.0)  # 6 mm down per command, gripper open
        wait_for(lambda: operator.applied, 90, "the driver applying the operator's commands")
        for end in ("stop_episode", "success_episode"):
            wait_for(lambda: process.poll() is not None or operator.call("start_episode").success, 90,
                     "an episode to start")
            assert process.poll() is None, log.read_text()[-3000:]
            started = len(operator.applied)
            wait_for(lambda n=started + 8: len(operator.applied) >= n, 30, "eight commands into the episode")
            ended = operator.call(end)
            assert ended.success, ended.message
        process.wait(timeout=60)  # the recorder has its two episodes: the job ends itself
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = log.read_text()
    assert process.returncode == 0, text[-3000:]
    assert "[bringup] recorder finished: stopping the graph" in text and "[bringup] franka stopped (status 0)" in text
    assert "backend fault" not in text, text[-3000:]
    assert validate(out) == []
    reader = TrajectoryReader(out)
    assert reader.num_episodes == 2
    assert {k: (v.shape, v.dtype) for k, v in reader.spec.keys().items()} == \
           {k: (v.shape, v.dtype) for k, v in embodiment_spec("franka").keys().items()}  # no task_state on hardware
    assert [reader.episode_info(i)["source"] for i in range(2)] == ["teleop", "teleop"]
    assert [reader.episode_info(i)["success"] for i in range(2)] == [None, True]
    episodes = [reader.episode(i) for i in range(2)]
    assert all(len(e["action"]) >= 6 for e in episodes)
    assert episodes[1]["reward"][-1] == 1.0 and episodes[1]["terminated"][-1]
    actions = np.concatenate([e["action"] for e in episodes])
    assert np.all(np.abs(actions) <= 1.0) and np.all(actions[:, 2] < 0)  # executed (the safety filter's): down
    # no jump from the pose the arm started at (inside the safety box): every applied command within bounds
    executed = np.array([m.position for m in operator.applied])
    assert np.all(np.abs(executed) <= 1.0 + 1e-6), executed[np.abs(executed).max(axis=1) > 1.0]
    assert actions[-1, 6] == 1.0  # the gripper opened, at the filter's pace from wherever an earlier test left it
    tcp_z = np.concatenate([e["state"][:, 9] for e in episodes])  # state: joints (7), TCP position (3), ...
    assert tcp_z[-1] < tcp_z[0] - 0.02, f"the arm did not move down through franky-sim: TCP z {tcp_z[0]:.3f} -> {tcp_z[-1]:.3f}"
