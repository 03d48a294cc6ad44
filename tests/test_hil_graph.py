"""Motion takeover over real DDS on loopback and through real processes.

- In one process, real nodes: the WidowX twin behind a real DriverNode, a PolicyNode with a tiny trained
  checkpoint (untrained skill: plumbing), and a TeleopNode in takeover mode whose device the test holds and
  releases (a scripted device: no input hardware here). While held, every command the driver applies is
  the operator's and the policy is silent; the operator's first command keeps the gripper the driver last
  applied; released, the policy drives again.
- `robot-rl finetune ... takeover=true teleop=scripted` on the twin: the learner, the robot process (driver,
  policy node, the task's expert as the takeover operator) and the recorder as separate processes; the
  online store holds episodes mixing the policy's and the operator's steps, with hand-backs, and the
  learner draws the operator's steps on the demonstration side.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import test_policy_runner
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray

from robot_rl.datasets import TrajectoryReader
from robot_rl.datasets.repair import validate
from robot_rl.drivers.driver_node import DriverNode
from robot_rl.drivers.policy_node import COMMAND_QOS, PolicyNode, twin_observation
from robot_rl.drivers.safety import SafetyFilter, widowx_limits
from robot_rl.drivers.teleop import TeleopInput, TeleopNode
from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.control import DeltaPoseController
from ros_helpers import wait_for

checkpoints = test_policy_runner.checkpoints
RATE_HZ = 5.0
HUMAN = np.array([0.0, 0.0, 0.4, 0.0, 0.0, 0.0])  # the operator lifts
_namespaces = itertools.count()


class HeldDevice:
    """A teleop device the test holds (``held``) and releases; it sends HUMAN while held."""

    def __init__(self):
        self.held = threading.Event()

    def connect(self):
        pass

    def disconnect(self):
        pass

    def read(self) -> TeleopInput:
        held = self.held.is_set()
        return TeleopInput(HUMAN.copy() if held else np.zeros(6), held=held)


class Watcher(Node):
    """Every command the driver applied (ee_command_applied) and every intervention state, with arrival times."""

    def __init__(self, context, namespace):
        super().__init__("hil_watcher", context=context, namespace=namespace)
        self.lock = threading.Lock()
        self.applied: list[tuple[float, np.ndarray]] = []
        self.sent: list[tuple[float, np.ndarray]] = []
        self.held: list[tuple[float, bool]] = []
        self.create_subscription(JointState, "ee_command_applied", lambda m: self._keep(self.applied, m.position), COMMAND_QOS)
        self.create_subscription(Float64MultiArray, "ee_delta_command", lambda m: self._keep(self.sent, m.data), COMMAND_QOS)
        self.create_subscription(Bool, "intervention", lambda m: self._keep(self.held, m.data), COMMAND_QOS)

    def _keep(self, into, value):
        with self.lock:
            into.append((time.monotonic(), np.array(value, dtype=float)))

    def since(self, into, t0: float) -> list[np.ndarray]:
        with self.lock:
            return [v for t, v in into if t >= t0]


def test_the_operator_takes_over_through_the_driver_and_hands_back(context, spinner, checkpoints):
    run_a, _ = checkpoints
    backend = WidowXTwinBackend(task="reach", seed=3)
    backend.connect()
    ns = f"/hil_test_{os.getpid()}_{next(_namespaces)}"
    device = HeldDevice()
    try:
        safety = SafetyFilter(widowx_limits(control_period=1 / RATE_HZ), control_period=1 / RATE_HZ)
        driver = spinner.add(DriverNode(
            backend, safety, np.append(wx.HOME_QPOS, wx.FINGER_LIMITS[1]), ee_controller=DeltaPoseController(),
            opening_from_gripper=lambda finger: float(wx.width_to_opening(2 * finger)), context=context, namespace=ns))
        assert driver.enable_torque(True)[0]
        watcher = spinner.add(Watcher(context, ns))
        policy = spinner.add(PolicyNode(run_a, twin_observation(backend), rate_hz=RATE_HZ, context=context, namespace=ns))
        teleop = spinner.add(TeleopNode(device, rate_hz=RATE_HZ, deadband=0.0, takeover=True, context=context,
                                        namespace=ns))
        spinner.start()
        wait_for(lambda: len(watcher.since(watcher.applied, 0)) >= 5 and teleop.applied_gripper is not None, 10.0,
                 "the policy's first applied commands")
        last_policy_gripper = teleop.applied_gripper
        teleop.gripper_open = last_policy_gripper < 0  # the latch disagrees with the arm: the takeover must sync it
        published_before = policy.actions_published
        t_held = time.monotonic()
        device.held.set()
        wait_for(lambda: policy.yielding.held, 3.0, "the policy yielding")
        settled = time.monotonic() + 0.3  # a policy command published just before it yielded may be in flight
        wait_for(lambda: len(watcher.since(watcher.applied, settled)) >= 6, 5.0, "six commands while held")
        held_applied = watcher.since(watcher.applied, settled)
        held_sent = watcher.since(watcher.sent, settled)
        published_while_held = policy.actions_published - published_before
        first_human = next(v for v in watcher.since(watcher.sent, t_held) if np.allclose(v[:6], HUMAN))
        device.held.clear()
        wait_for(lambda: not policy.yielding.held, 3.0, "the hand-back")
        released = time.monotonic()
        wait_for(lambda: len(watcher.since(watcher.sent, released)) >= 4, 5.0, "the policy's commands again")
        after = watcher.since(watcher.sent, released + 0.3)
    finally:
        spinner.stop()
        backend.close()

    assert all(np.allclose(v[:6], HUMAN) for v in held_sent), "while held only the operator commands"
    assert published_while_held <= 1, f"the policy published {published_while_held} actions while held"
    assert all(a[2] > 0 for a in held_applied), "the operator's lift went through the driver (z up)"
    assert first_human[6] == (1.0 if last_policy_gripper >= 0 else -1.0), \
        "the takeover keeps the gripper the driver last applied"
    assert after and not any(np.allclose(v[:6], HUMAN) for v in after), "after the hand-back the policy commands"
    assert policy.yielding.takeovers == 1


# --- through real processes: robot-rl finetune on the twin ------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
ROBOT_RL = str(REPO / ".venv" / "bin" / "robot-rl")
TINY = ["robot=widowx", "task=reach", "algo=wsrl", "algo.agent.hidden=[32,32]", "algo.agent.ensemble_size=2",
        "algo.batch_size=16", "algo.schedule.offline_updates=5", "algo.schedule.utd=1", "eval.episodes=1",
        "eval.every_updates=0", "eval.every_env_steps=0", "eval.video=false", "threads=1", "grace_s=3"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from learner_helpers import demo_store

    return demo_store(tmp_path_factory.mktemp("hil_finetune") / "reach.zarr", episodes=2)


@pytest.mark.slow
def test_finetune_with_a_scripted_operator_taking_over_when_the_policy_strays(tmp_path, dataset):
    run = tmp_path / "run"
    done = subprocess.run([ROBOT_RL, "finetune", *TINY, f"dataset={dataset}", "backend=twin", "realtime=true",
                           "teleop=scripted", "takeover=true", "max_steps=20", "algo.schedule.warmup_steps=20",
                           "algo.schedule.online_steps=100", "publish_every=20", f"run_dir={run}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert validate(run / "online.zarr") == []
    reader = TrajectoryReader(run / "online.zarr")
    flags = reader.column("intervention")
    infos = [reader.episode_info(i) for i in range(reader.num_episodes)]
    ends = np.asarray(reader.episode_ends)
    starts = np.concatenate([[0], ends[:-1]])
    mixed = [i for i in range(reader.num_episodes) if 0 < flags[starts[i]:ends[i]].sum() < ends[i] - starts[i]]
    assert mixed, f"no episode mixes the policy's and the operator's steps: {[i.get('human_steps') for i in infos]}"
    handed_back = [i for i in mixed if np.any(np.diff(flags[starts[i]:ends[i]].astype(int)) == -1)]
    assert handed_back, "the operator never handed back within an episode"
    for i in range(reader.num_episodes):
        assert infos[i]["human_steps"] == int(flags[starts[i]:ends[i]].sum())
        assert infos[i]["interventions"] == int(np.sum(np.diff(np.r_[0, flags[starts[i]:ends[i]].astype(int)]) == 1))
    import json

    latest = (run / "checkpoints" / "latest").read_text().strip()
    state = json.loads((run / "checkpoints" / latest / "state.json").read_text())
    online = next(p for p in state["phase_log"] if p["phase"] == "online")
    assert online.get("human_rows", 0) > 0, f"the learner drew no human step: {online}"
    print(f"\n{int(flags.sum())} human steps of {len(flags)}, {sum(i['interventions'] for i in infos)} takeovers "
          f"in {reader.num_episodes} episodes; learner phase log {online}")
