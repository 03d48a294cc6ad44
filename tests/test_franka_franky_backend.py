"""FrankyBackend through the real franky client (libfranka) against franky-sim serving the libfranka
protocol on a loopback address, behind the same CommandArbiter the driver node runs."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("franky")
pytest.importorskip("franky_sim")

from robot_rl.drivers.backend import BackendFault  # noqa: E402
from robot_rl.drivers.command_arbiter import Applied, CommandArbiter, Refusal  # noqa: E402
from robot_rl.drivers.franka.franky_backend import FrankyBackend  # noqa: E402
from robot_rl.drivers.franka.robot import DEFINITION  # noqa: E402
from robot_rl.sim.franka import panda, server  # noqa: E402
from robot_rl.sim.franka.kinematics import PandaKinematics  # noqa: E402

RATE = panda.CONTROL_RATE_HZ
BUS_PERIOD = 0.02


@pytest.fixture
def arbiter(franky_sim_host):
    backend = FrankyBackend(franky_sim_host)
    backend.connect()
    faults = []
    arbiter = CommandArbiter(backend, **DEFINITION.driver_parts(RATE), on_fault=faults.append)
    arbiter.faults = faults
    assert arbiter.enable_torque(True)[0]
    yield arbiter
    arbiter.shutdown()


def run(arbiter, seconds: float, action=None, until=None) -> list:
    """Tick the bus for ``seconds`` (50 Hz) and send ``action`` at the 10 Hz command rate; the outcomes."""
    outcomes, next_command = [], 0.0
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        if action is not None and now - start >= next_command:
            outcomes.append(arbiter.ee_delta(action))
            next_command += 1.0 / RATE
        arbiter.tick()
        if until is not None and until():
            break
        time.sleep(BUS_PERIOD)
    return outcomes


def settle(arbiter, timeout: float = 5.0) -> None:
    """Tick until the arm is still (no joint moves 0.5 mrad in a bus period for 0.5 s; positions,
    as franky-sim's wrist joint chatters in velocity at rest): the sim may run slower than real time."""
    still, last = [], [arbiter.measured.copy()]

    def is_still():
        still.append(bool(np.max(np.abs(arbiter.measured[:7] - last[0][:7])) < 5e-4))
        last[0] = arbiter.measured.copy()
        return len(still) > 25 and all(still[-25:])

    run(arbiter, timeout, until=is_still)
    assert all(still[-25:]), "the arm did not come to rest"


def tcp(arbiter) -> np.ndarray:
    return PandaKinematics().forward(arbiter.measured[:7])[0]


def test_connect_reads_the_simulated_arm_at_the_ready_pose(franky_sim_host):
    backend = FrankyBackend(franky_sim_host)
    with pytest.raises(BackendFault, match="not connected"):
        backend.read()
    backend.connect()
    try:
        assert backend.realtime is False  # loopback: the protocol twin, no RT kernel needed
        reading = backend.read()
        assert reading.position[:7] == pytest.approx(panda.HOME_QPOS, abs=1e-3)
        assert reading.position[7] == pytest.approx(panda.GRIPPER_MAX_WIDTH / 2, abs=1e-3)
        assert np.all(np.isfinite(reading.effort))
    finally:
        backend.close()


def test_connect_to_a_silent_address_is_a_fault_naming_the_fix():
    backend = FrankyBackend(server.free_loopback_host())  # nobody serves there
    with pytest.raises(BackendFault, match="FCI is activated"):
        backend.connect()


def go_home(arbiter) -> None:
    ok, message = arbiter.home()
    assert ok, message
    run(arbiter, 10.0, until=lambda: np.max(np.abs(arbiter.measured[:7] - panda.HOME_QPOS)) < 2e-3)
    settle(arbiter)


def test_home_then_a_command_moves_the_tcp_by_exactly_its_delta(arbiter):
    """The ready pose lies inside the safety box: the first command after home is not clipped (no jump)."""
    go_home(arbiter)
    start = tcp(arbiter)
    first = arbiter.ee_delta(np.array([0, 0, -1.0, 0, 0, 0, 1.0]))
    assert isinstance(first, Applied)
    assert first.ee_action[:6] == pytest.approx([0, 0, -1.0, 0, 0, 0], abs=1e-6)  # executed as commanded
    target = PandaKinematics().forward(first.target[:7])[0]
    assert target - start == pytest.approx([0, 0, -panda.POS_STEP], abs=1e-3)
    holds = run(arbiter, 1.0, action=np.zeros(7))  # zero actions keep the target while the arm gets there
    assert all(np.allclose(o.ee_action[:6], 0.0, atol=1e-4) for o in holds)  # IK re-solves: < 1 um
    assert tcp(arbiter) - start == pytest.approx([0, 0, -panda.POS_STEP], abs=3e-3)


def test_ee_actions_move_the_tcp_as_the_twin_scales_them(arbiter):
    start = tcp(arbiter)
    outcomes = run(arbiter, 1.0, action=np.array([0, 0.0, -1.0, 0, 0, 0, 1.0]))
    assert all(isinstance(o, Applied) for o in outcomes)
    # POS_STEP per unit: most of each step executed (the filter's velocity bound trims a command that comes early)
    executed = [o.ee_action[2] for o in outcomes]
    assert min(executed) >= -1.0 - 1e-6 and np.median(executed) < -0.8
    settle(arbiter)  # the watchdog holds; the motion settles
    moved = tcp(arbiter) - start
    # ten commands of -POS_STEP on z: the target goes down 0.03 m per command, the arm follows and holds
    # where the watchdog trips
    assert moved[2] < -0.2
    assert abs(moved[0]) < 0.02 and abs(moved[1]) < 0.02


def test_the_gripper_closes_and_opens_through_frankys_gripper_api(arbiter):
    run(arbiter, 6.0, action=np.array([0, 0, 0, 0, 0, 0, -1.0]), until=lambda: arbiter.measured[7] * 2 < 0.01)
    assert arbiter.measured[7] * 2 < 0.01
    run(arbiter, 6.0, action=np.array([0, 0, 0, 0, 0, 0, 1.0]),
        until=lambda: arbiter.measured[7] * 2 > panda.GRIPPER_MAX_WIDTH - 0.01)
    assert arbiter.measured[7] * 2 > panda.GRIPPER_MAX_WIDTH - 0.01


def test_targets_are_clipped_at_the_safety_box_faces(arbiter):
    # toward the corner at x low, y high, z high (the ready pose's side of the box): 25 full steps reach
    # past all three faces from anywhere in the box
    outcomes = run(arbiter, 2.5, action=np.array([-1.0, 1.0, 1.0, 0, 0, 0, 1.0]))
    corner = np.array([panda.SAFETY_BOX_LOW[0], panda.SAFETY_BOX_HIGH[1], panda.SAFETY_BOX_HIGH[2]])
    assert arbiter.ee_controller.target_pos == pytest.approx(corner, abs=2e-3)  # clipped on each face
    assert np.all(np.abs([o.ee_action[:3] for o in outcomes]) <= 1.0 + 1e-6)  # the clipped moves executed
    assert np.allclose(outcomes[-1].ee_action[:3], 0.0, atol=1e-3)  # at the corner: nothing left to move
    run(arbiter, 1.0)
    assert tcp(arbiter) == pytest.approx(corner, abs=0.015)  # the arm went there, and no further


def test_nan_is_refused_and_nothing_moves(arbiter):
    settle(arbiter)
    before = arbiter.measured.copy()
    outcome = arbiter.ee_delta(np.array([np.nan, 0, 0, 0, 0, 0, 1.0]))
    assert isinstance(outcome, Refusal) and outcome.reason == "nan_rejected"
    run(arbiter, 0.5)
    assert arbiter.measured[:7] == pytest.approx(before[:7], abs=2e-3)


def test_watchdog_and_estop_hold_the_arm(arbiter):
    run(arbiter, 0.5, action=np.array([0, 0, -1.0, 0, 0, 0, 1.0]))
    settle(arbiter)  # commands stopped: the watchdog holds at the measured pose
    held = arbiter.measured.copy()
    run(arbiter, 0.5)
    assert arbiter.measured[:7] == pytest.approx(held[:7], abs=3e-3)
    arbiter.estop("test")
    outcome = arbiter.ee_delta(np.array([0, 0, -1.0, 0, 0, 0, 1.0]))
    assert isinstance(outcome, Applied) and np.allclose(outcome.ee_action[:6], 0.0)  # a hold
    run(arbiter, 0.5)
    assert arbiter.measured[:7] == pytest.approx(held[:7], abs=3e-3)


def test_killed_server_is_a_fault_and_clear_fault_reconnects_without_a_jump():
    host = server.free_loopback_host(start=100)
    process = server.spawn(host)
    backend = FrankyBackend(host)
    backend.connect()
    faults = []
    arbiter = CommandArbiter(backend, **DEFINITION.driver_parts(RATE), on_fault=faults.append)
    try:
        assert arbiter.enable_torque(True)[0]
        run(arbiter, 0.5, action=np.array([0, 0, -1.0, 0, 0, 0, 1.0]))
        process.kill()  # mid-motion: the commands keep coming
        killed = time.monotonic()
        run(arbiter, 3.0, action=np.array([0, 0, -1.0, 0, 0, 0, 1.0]), until=lambda: arbiter.fault is not None)
        detected = time.monotonic() - killed
        assert arbiter.fault is not None and len(faults) == 1, arbiter.fault
        assert "lost" in arbiter.fault or "Network" in arbiter.fault
        assert detected < 0.9  # the stale state clock (0.5 s on loopback), before libfranka's 1 s timeout
        assert arbiter.estopped and arbiter.status()[0] == 2  # ERROR
        assert isinstance(arbiter.ee_delta(np.zeros(7)), Refusal)
        ok, message = arbiter.clear_fault()
        assert not ok, message  # nobody serves: the fault stays
        process = server.spawn(host)
        ok, message = arbiter.clear_fault()
        assert ok, message
        assert arbiter.fault is None and not arbiter.torque_enabled and arbiter.estopped
        measured = arbiter.measured.copy()
        assert measured[:7] == pytest.approx(panda.HOME_QPOS, abs=1e-3)  # the restarted server's pose
        assert arbiter.enable_torque(True)[0]
        arbiter.reset_estop()
        first = arbiter.ee_delta(np.zeros(7))
        assert isinstance(first, Applied)
        # no jump: the first target is the measured pose (the ready pose, inside the safety box), not the
        # target before the fault
        kinematics = PandaKinematics()
        start, target = kinematics.forward(measured[:7])[0], kinematics.forward(first.target[:7])[0]
        assert target == pytest.approx(start, abs=1e-3)
        assert first.ee_action[:6] == pytest.approx(np.zeros(6), abs=1e-6)
        run(arbiter, 0.5, action=np.array([0, 0, -1.0, 0, 0, 0, 1.0]))
        assert arbiter.fault is None
    finally:
        arbiter.shutdown()
        server.stop(process)


def test_an_arm_address_gets_the_real_time_check_and_the_tight_stale_timeout():
    backend = FrankyBackend("172.16.0.2")  # not connected: only the settings
    assert backend.realtime is True and backend.stale_after == pytest.approx(0.1)
    with pytest.raises(ValueError, match="relative_dynamics_factor"):
        FrankyBackend("127.0.0.1", relative_dynamics_factor=1.5)
