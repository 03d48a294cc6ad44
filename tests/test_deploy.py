"""`robot-rl deploy` and the policy node's command latency: real processes, real DDS on loopback.

Command latency is the round trip ee_delta_command -> the driver's ee_command_applied
(robot_rl.drivers.policy_node). The checkpoints come from tiny `robot-rl train` runs (untrained: these
tests check plumbing, not skill).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from learner_helpers import tiny_checkpoint
from robot_rl.drivers.driver_node import DriverNode
from robot_rl.drivers.policy_node import COMMAND_QOS, PolicyNode, twin_observation
from robot_rl.drivers.safety import SafetyFilter, widowx_limits
from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.control import DeltaPoseController
from ros_helpers import wait_for

RATE_HZ = 5.0
_namespaces = itertools.count()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("deploy") / "train")


def namespace() -> str:
    return f"/deploy_test_{os.getpid()}_{next(_namespaces)}"


def twin_driver(backend, context, ns: str) -> DriverNode:
    safety = SafetyFilter(widowx_limits(control_period=1 / RATE_HZ), control_period=1 / RATE_HZ)
    driver = DriverNode(backend, safety, np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1]),
                        ee_controller=DeltaPoseController(),
                        opening_from_gripper=lambda finger: float(wx.width_to_opening(2 * finger)),
                        context=context, namespace=ns)
    assert driver.enable_torque(True)[0]
    return driver


def finite_positive(values) -> bool:
    return len(values) > 0 and all(math.isfinite(v) and v > 0 for v in values)


# --- the verb, end to end -------------------------------------------------------------------------

def test_deploy_on_the_twin_reports_success_and_both_latencies(tmp_path, checkpoint):
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "robot_rl.cli.main", "deploy", "backend=twin",
                           f"checkpoint={checkpoint}", "steps=15", f"run_dir={run_dir}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((run_dir / "deploy.json").read_text())
    assert isinstance(report["success"], bool)
    assert 1 <= report["actions_published"] <= 15 and (report["success"] or report["actions_published"] == 15)
    for key in ("inference_p50_ms", "inference_p99_ms", "command_p50_ms", "command_p99_ms"):
        assert math.isfinite(report[key]) and report[key] > 0, (key, report)
    assert report["inference_p50_ms"] <= report["inference_p99_ms"]
    assert report["command_p50_ms"] <= report["command_p99_ms"] < 1e3 / RATE_HZ  # answered within a period
    assert 0 < report["command_samples"] <= report["actions_published"]
    assert report["checkpoint"].startswith(str(checkpoint))
    # the policy node's own lines, then the verb's table
    assert "[policy] command latency: p50" in done.stdout
    table = done.stdout[done.stdout.index("deploy: widowx on twin (exit status 0)"):]
    for row in ("checkpoint", "robot / backend", "task", "success", "actions sent", "inference latency",
                "command latency", "run folder", "logs"):
        assert f"│ {row}" in table, (row, table)
    assert f"p50 {report['command_p50_ms']:.2f} ms" in table
    assert "graph: deploy" in (run_dir / "config.yaml").read_text()
    assert (run_dir / "logs" / "policy.log").exists()


@pytest.mark.parametrize("overrides, message", [
    ([], "checkpoint="),
    (["checkpoint=/nonexistent/run"], "checkpoint=/nonexistent/run: no such file"),
    (["checkpoint=/nonexistent/run", "backend=usb"], "backend=usb: expected one of twin, dynamixel"),
])
def test_deploy_refuses_bad_input_with_status_2(overrides, message, capsys, tmp_path):
    from robot_rl.cli.main import main

    assert main(["deploy", *overrides, f"run_dir={tmp_path / 'run'}"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing is started or written for bad input"


def test_deploy_refuses_a_checkpoint_without_its_spec_naming_the_fix(capsys, tmp_path, checkpoint):
    from robot_rl.cli.main import main

    old = tmp_path / "old_run"
    shutil.copytree(checkpoint / "checkpoints", old / "checkpoints")
    for spec in old.glob("checkpoints/*/spec.json"):
        spec.unlink()
    assert main(["deploy", f"checkpoint={old}", f"run_dir={tmp_path / 'run'}"]) == 2
    assert "python -m robot_rl.learner.policy add-spec" in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing is started or written for bad input"


@pytest.fixture
def started(monkeypatch) -> list:
    """The graphs `robot-rl deploy` would start, recorded instead of run."""
    calls = []
    monkeypatch.setattr("robot_rl.cli.deploy.run_processes", lambda cfg, processes: calls.append(processes) or 0)
    return calls


@pytest.mark.parametrize("task", ["pick_place", "widowx_pick_place"])
def test_deploy_refuses_a_task_other_than_the_checkpoints(task, capsys, tmp_path, checkpoint, started):
    from robot_rl.cli.main import main

    assert main(["deploy", f"checkpoint={checkpoint}", f"task={task}", f"run_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "task=widowx_pick_place" in err and "task=widowx_reach" in err and "drop task=" in err, err
    assert not started and not (tmp_path / "run").exists(), "nothing is started or written for bad input"


@pytest.mark.parametrize("task", ["reach", "widowx_reach"])
def test_deploy_accepts_the_checkpoints_own_task(task, capsys, tmp_path, checkpoint, started):
    from robot_rl.cli.main import main

    assert main(["deploy", f"checkpoint={checkpoint}", f"task={task}", f"run_dir={tmp_path / 'run'}"]) == 0
    assert len(started) == 1, capsys.readouterr().err


# --- command latency in the node ------------------------------------------------------------------

def test_policy_node_times_its_commands_through_a_real_driver(context, spinner, checkpoint):
    backend = WidowXTwinBackend(task="reach", seed=3)
    backend.connect()
    spinner.backends.append(backend)
    ns = namespace()
    spinner.add(twin_driver(backend, context, ns))
    diagnostics = []
    listener = spinner.add(Node("deploy_test_diagnostics", context=context, namespace=ns))
    listener.create_subscription(DiagnosticArray, "diagnostics",
                                 lambda msg: diagnostics.extend(s for s in msg.status if s.name.endswith(": policy")),
                                 COMMAND_QOS)
    node = spinner.add(PolicyNode(checkpoint, twin_observation(backend), rate_hz=RATE_HZ, context=context,
                                  namespace=ns))
    spinner.start()
    wait_for(lambda: len(node.runner.commands.latencies_ms) >= 8, 10.0, "8 answered commands")
    status = wait_for(lambda: next((s for s in reversed(diagnostics)
                                    if int({kv.key: kv.value for kv in s.values}["command_samples"]) > 0), None),
                      3.0, "diagnostics with command latencies")
    spinner.stop()

    samples = list(node.runner.commands.latencies_ms)
    assert finite_positive(samples)
    assert max(samples) < 1e3 / RATE_HZ, f"round trips {samples} ms: the driver answers in its callback"
    assert node.runner.commands.unanswered == 0, "a driver with torque on answers every command"
    assert len(samples) + node.summary()["commands_pending"] == node.actions_published
    p50, p99 = node.runner.command_latency_percentiles_ms()
    assert 0 < p50 <= p99
    values = {kv.key: kv.value for kv in status.values}
    assert math.isfinite(float(values["command_p50_ms"])) and values["commands_unanswered"] == "0"
    print(f"\ncommand latency (round trip) p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(samples)} commands")


class RefusingDriver(Node):
    """Answers only every other ee_delta_command, as a driver that drops commands (torque off, fault)."""

    def __init__(self, context, ns):
        super().__init__("refusing_driver", context=context, namespace=ns)
        self.received = 0
        self.applied_pub = self.create_publisher(JointState, "ee_command_applied", COMMAND_QOS)
        self.create_subscription(Float64MultiArray, "ee_delta_command", self._on_command, COMMAND_QOS)

    def _on_command(self, msg):
        self.received += 1
        if self.received % 2 == 0:
            self.applied_pub.publish(JointState(position=list(msg.data)))


def test_commands_the_driver_does_not_answer_are_counted_not_timed(context, spinner, checkpoint):
    backend = WidowXTwinBackend(task="reach", seed=5)
    try:
        obs = twin_observation(backend)()
    finally:
        backend.close()
    ns, rate = namespace(), 10.0
    driver = spinner.add(RefusingDriver(context, ns))
    node = spinner.add(PolicyNode(checkpoint, lambda: obs, rate_hz=rate, context=context, namespace=ns))
    spinner.start()
    wait_for(lambda: len(node.runner.commands.latencies_ms) >= 4, 10.0, "4 answered commands")
    spinner.stop()

    samples = list(node.runner.commands.latencies_ms)
    # FIFO matching alone would time each answer from the refused command before it (a control period).
    assert finite_positive(samples) and max(samples) < 0.5e3 / rate, samples
    assert node.runner.commands.unanswered >= len(samples) - 1 >= 3
    assert node.runner.commands.unanswered + len(samples) + node.summary()["commands_pending"] == node.actions_published
    assert driver.received <= node.actions_published


# --- stopping: Ctrl-C and SIGTERM end the process with status 0, its report written -------------------

@pytest.fixture(scope="module")
def state_only_checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("deploy") / "train_state_only", "obs_keys=[state]")  # hardware's


def stop_after_commands(command: list[str], applied: list, sig: int, commands: int = 5) -> str:
    """Run the policy node ``command`` until the driver applied ``commands`` of its commands, send it ``sig``,
    and return its output once it exited with status 0 (a clean stop: no traceback, nothing published on a
    shut-down context)."""
    process = subprocess.Popen([sys.executable, "-m", "robot_rl.drivers.policy_node", *command],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(applied) >= commands or process.poll() is not None, 60.0, f"{commands} commands applied")
        assert process.poll() is None, "".join(output)[-3000:]
        process.send_signal(sig)
        assert process.wait(timeout=30) == 0, "".join(output)[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=5)
    text = "".join(output)
    assert "Traceback" not in text and "Failed to publish" not in text, text[-3000:]
    return text


def applied_listener(spinner, context, ns: str) -> list:
    applied = []
    listener = spinner.add(Node("deploy_test_applied", context=context, namespace=ns))
    listener.create_subscription(JointState, "ee_command_applied", applied.append, COMMAND_QOS)
    return applied


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_policy_node_on_topics_writes_its_report_at_ctrl_c(context, spinner, tmp_path, state_only_checkpoint, sig):
    """The hardware path: observations from topics; the report is written when the node is stopped."""
    backend = WidowXTwinBackend(task="reach", seed=2)
    backend.connect()
    ns = namespace()
    driver = twin_driver(backend, context, ns)
    spinner.add(driver, close=driver.shutdown_backend)
    applied = applied_listener(spinner, context, ns)
    spinner.start()
    report = tmp_path / "deploy.json"
    try:
        output = stop_after_commands(["--checkpoint", str(state_only_checkpoint), "--observation", "topics",
                                      "--report", str(report), "--name", "topics_policy",
                                      "--ros-args", "-r", f"__ns:={ns}"], applied, sig)
    finally:
        spinner.stop()
    result = json.loads(report.read_text())
    assert result["success"] is None, "no success on hardware"
    assert result["actions_published"] >= 5 and result["command_samples"] >= 4
    assert finite_positive([result[k] for k in ("inference_p50_ms", "inference_p99_ms", "command_p50_ms",
                                                 "command_p99_ms")]), result
    assert f"{result['actions_published']} actions sent" in output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_policy_node_on_the_twin_stops_cleanly_and_reports_at_a_signal(context, spinner, tmp_path, checkpoint, sig):
    """The twin path (the twin, its driver and the policy in the node's process), stopped mid-run."""
    ns = namespace()
    applied = applied_listener(spinner, context, ns)
    spinner.start()
    report = tmp_path / "deploy.json"
    output = stop_after_commands(["--checkpoint", str(checkpoint), "--steps", "100000", "--report", str(report),
                                  "--ros-args", "-r", f"__ns:={ns}"], applied, sig)
    result = json.loads(report.read_text())
    assert isinstance(result["success"], bool) and result["actions_published"] >= 5
    assert result["command_samples"] >= 4 and finite_positive([result["command_p50_ms"]])
    assert f"success: {result['success']} after {result['actions_published']} actions" in output


# --- the RC car: robot-rl deploy robot=rc_car on its twin and through the VESC protocol twin -------------

@pytest.fixture(scope="module")
def car_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deploy_car")
    return {"twin": tiny_checkpoint(folder / "train", "task=rc_car_goal"),
            "vesc": tiny_checkpoint(folder / "train_state_only", "task=rc_car_goal", "obs_keys=[state]")}


def test_deploy_drives_the_rc_car_twin_and_reports_latency(tmp_path, car_checkpoints):
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "robot_rl.cli.main", "deploy", "robot=rc_car", "task=goal",
                           "backend=twin", "rate=20", "cameras=[]", f"checkpoint={car_checkpoints['twin']}", "steps=20",
                           f"run_dir={run_dir}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((run_dir / "deploy.json").read_text())
    assert 1 <= report["actions_published"] <= 20 and isinstance(report["success"], bool)
    for key in ("inference_p50_ms", "command_p50_ms", "command_p99_ms"):
        assert math.isfinite(report[key]) and report[key] > 0, (key, report)
    assert report["command_p99_ms"] < 1e3 / 20  # answered within a control period
    assert "deploy: rc_car on twin (exit status 0)" in done.stdout


def test_deploy_drives_the_rc_car_through_its_vesc_and_brakes_at_ctrl_c(tmp_path, car_checkpoints):
    from robot_rl.sim.vesc.process import EmulatedVescProcess

    run_dir = tmp_path / "run"
    with EmulatedVescProcess(seed=5) as vesc:
        process = subprocess.Popen([sys.executable, "-m", "robot_rl.cli.main", "deploy", "robot=rc_car", "task=goal",
                                    "backend=vesc", f"port={vesc.port}", "rate=20", "cameras=[]",
                                    f"checkpoint={car_checkpoints['vesc']}", f"run_dir={run_dir}"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: len(vesc.rpm_log()) >= 40 or process.poll() is not None, 90.0,
                     "the policy's actions reaching the VESC as COMM_SET_RPM")
            assert process.poll() is None, process.communicate()[0][-3000:]
            process.send_signal(signal.SIGINT)  # hardware: the operator ends the run
            out, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert vesc.commands()["last_motor_command"] == "brake", "the motor was not braked at Ctrl-C"
    assert process.returncode == 130, out[-3000:]
    report = json.loads((run_dir / "deploy.json").read_text())
    assert report["actions_published"] > 0 and report["success"] is None
    assert math.isfinite(report["command_p50_ms"]) and report["command_p50_ms"] > 0, report
    assert "deploy: rc_car on vesc (exit status 130)" in out
