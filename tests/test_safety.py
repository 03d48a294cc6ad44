"""The safety filter: joint limits, step and velocity limits, NaN/inf refusal, the workspace box, the
watchdog, the latched e-stop, the counts, and bad-input errors, on a toy planar 2-link arm and on the
WidowX 250 S limits (with the twin's MuJoCo forward kinematics)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from robot_rl.drivers.safety import SafetyError, SafetyFilter, SafetyLimits, widowx_limits

NAN, INF = float("nan"), float("inf")
PERIOD = 0.1


def planar_fk(q):
    """Planar 2-link arm, both links 1 m, in the xy plane."""
    q0, q1 = q
    return np.array([np.cos(q0) + np.cos(q0 + q1), np.sin(q0) + np.sin(q0 + q1), 0.0])


def toy_limits(**overrides) -> SafetyLimits:
    # max_step 0.15 rad; max_velocity 2 rad/s, so over one period (0.1 s) the step bound binds.
    kwargs = dict(joint_names=("j0", "j1"), lower=[-1.0, -2.0], upper=[1.0, 2.0], max_velocity=2.0,
                  max_step=0.15, watchdog_timeout=0.5, fk=planar_fk, workspace_low=[1.5, -1.0, -1.0],
                  workspace_high=[2.5, 1.0, 1.0])
    kwargs.update(overrides)
    return SafetyLimits(**kwargs)


def toy_filter(**overrides) -> SafetyFilter:
    return SafetyFilter(toy_limits(**overrides), control_period=PERIOD)


@pytest.fixture(scope="module")
def wx_limits():
    return widowx_limits(control_period=0.2)


def wx_home():
    from robot_rl.sim.widowx.robot import HOME_QPOS

    return np.append(HOME_QPOS, 0.02)


def inside(limits, q) -> bool:
    xyz = limits.fk(q)
    return bool(np.all(xyz >= limits.workspace_low) and np.all(xyz <= limits.workspace_high))


# --- joint limits -------------------------------------------------------------------------------

def test_out_of_limit_command_is_clipped_toy():
    f = toy_filter(fk=None, workspace_low=None, workspace_high=None)   # q0 near 1 rad leaves the box
    r = f.filter([1.5, -0.05], measured_q=[0.95, 0.0], now=0.0)
    np.testing.assert_allclose(r.target, [1.0, -0.05])
    assert r.interventions == ["joint_limit"]
    assert f.counts["joint_limit"] == 1 and sum(f.counts.values()) == 1


def test_out_of_limit_command_is_clipped_widowx_arm_and_gripper():
    limits = widowx_limits(control_period=0.2, with_workspace=False)
    f = SafetyFilter(limits, control_period=0.2)
    measured = wx_home()
    measured[1] = np.deg2rad(113.0)   # shoulder one degree below its +114 deg limit
    measured[6] = 0.036               # finger 1 mm short of fully open (37 mm)
    command = measured.copy()
    command[1], command[6] = 3.0, 0.5
    r = f.filter(command, measured, now=0.0)
    assert r.target[1] == pytest.approx(np.deg2rad(114.0))
    assert r.target[6] == pytest.approx(0.037)
    np.testing.assert_allclose(np.delete(r.target, [1, 6]), np.delete(measured, [1, 6]))
    assert r.interventions == ["joint_limit"]


# --- step and velocity limits -------------------------------------------------------------------

def test_too_large_step_is_scaled_with_direction_kept_toy():
    f = toy_filter()
    r = f.filter([0.4, 0.2], measured_q=[0.0, 0.0], now=0.0)
    np.testing.assert_allclose(r.target, [0.15, 0.075])   # 0.4 -> 0.15: every joint scaled by 0.375
    assert r.interventions == ["step_limit"]
    # The next step starts at the last safe target, not at the (lagging) measured position.
    r = f.filter([0.4, 0.2], measured_q=[0.0, 0.0], now=0.1)
    np.testing.assert_allclose(r.target, [0.30, 0.15])
    assert f.counts["step_limit"] == 2


def test_too_large_step_is_scaled_widowx(wx_limits):
    f = SafetyFilter(wx_limits, control_period=0.2)
    home = wx_home()
    command = home + np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0])
    r = f.filter(command, home, now=0.0)
    max_step = np.pi / 2 * 0.2
    np.testing.assert_allclose(r.target - home, [max_step, 0, 0, 0, 0, max_step / 2, 0], atol=1e-12)
    assert r.interventions == ["step_limit"]
    assert inside(wx_limits, r.target)


def test_velocity_limit_binds_when_commands_come_fast():
    f = toy_filter()
    assert f.filter([0.05, 0.0], [0.0, 0.0], now=0.0).interventions == []
    r = f.filter([0.5, 0.0], [0.05, 0.0], now=0.02)      # 2 rad/s x 0.02 s = 0.04 rad < 0.15
    np.testing.assert_allclose(r.target, [0.09, 0.0])
    assert r.interventions == ["velocity_limit"]
    r = f.filter([0.5, 0.0], [0.09, 0.0], now=0.02)      # no time passed: no motion at all
    np.testing.assert_allclose(r.target, [0.09, 0.0])
    assert f.counts["velocity_limit"] == 2 and f.counts["step_limit"] == 0


def test_small_step_passes_untouched():
    f = toy_filter()
    r = f.filter([0.1, -0.1], [0.0, 0.0], now=0.0)
    np.testing.assert_allclose(r.target, [0.1, -0.1])
    assert r.interventions == [] and sum(f.counts.values()) == 0


# --- NaN / inf ----------------------------------------------------------------------------------

def test_nan_and_inf_are_refused_and_the_last_safe_target_held():
    f = toy_filter()
    f.filter([0.05, 0.0], [0.0, 0.0], now=0.0)
    for bad in ([NAN, 0.0], [0.0, INF], [-INF, NAN]):
        r = f.filter(bad, [0.04, 0.0], now=0.1)
        np.testing.assert_allclose(r.target, [0.05, 0.0])
        assert r.interventions == ["nan_rejected"]
    assert f.counts["nan_rejected"] == 3
    np.testing.assert_allclose(f.tick([0.04, 0.0], now=0.15).target, [0.05, 0.0])
    # The next valid command still moves from the last safe target, at most one step.
    r = f.filter([0.5, 0.0], [0.04, 0.0], now=0.2)
    np.testing.assert_allclose(r.target, [0.20, 0.0])


def test_nan_as_first_command_holds_the_measured_position():
    f = toy_filter()
    r = f.filter([NAN, NAN], [0.3, -0.2], now=0.0)
    np.testing.assert_allclose(r.target, [0.3, -0.2])
    assert r.interventions == ["nan_rejected"]


def test_nan_commands_do_not_feed_the_watchdog():
    f = toy_filter()
    f.filter([0.05, 0.0], [0.0, 0.0], now=0.0)
    for t in (0.2, 0.4, 0.6):
        f.filter([NAN, 0.0], [0.04, 0.0], now=t)
    r = f.tick([0.03, 0.01], now=0.6)
    assert r.interventions == ["watchdog_hold"]
    np.testing.assert_allclose(r.target, [0.03, 0.01])


# --- workspace box ------------------------------------------------------------------------------

def test_move_out_of_the_box_is_refused_and_a_move_back_allowed():
    f = toy_filter()   # box x in [1.5, 2.5]; x = cos(q0) + cos(q0 + q1)
    r = f.filter([0.0, 1.0], [0.0, 0.9], now=0.0)          # x = 1.54: inside
    assert r.interventions == []
    r = f.filter([0.0, 1.1], [0.0, 1.0], now=0.1)          # x = 1.45: outside
    np.testing.assert_allclose(r.target, [0.0, 1.0])
    assert r.interventions == ["workspace"]
    r = f.filter([0.0, 0.9], [0.0, 1.0], now=0.2)          # back inside
    np.testing.assert_allclose(r.target, [0.0, 0.9])
    assert r.interventions == []
    assert f.counts["workspace"] == 1


def test_outside_the_box_only_moves_towards_it_are_allowed():
    f = toy_filter()
    outside_q = [0.0, 1.5]                                   # x = 1.07: 0.43 m outside
    r = f.filter([0.0, 1.6], outside_q, now=0.0)            # farther out: refused, hold measured
    np.testing.assert_allclose(r.target, outside_q)
    assert r.interventions == ["workspace"]
    r = f.filter([0.0, 1.4], outside_q, now=0.1)            # closer, though still outside: allowed
    np.testing.assert_allclose(r.target, [0.0, 1.4])
    assert r.interventions == []


def test_refused_move_is_the_step_limited_target_not_the_raw_command():
    f = toy_filter()
    # The raw command (q1 = 0) is inside the box, the first step towards it from q1 = 1.6 is not
    # inside but closer: allowed. The filter judges what would really be sent.
    r = f.filter([0.0, 0.0], [0.0, 1.6], now=0.0)
    np.testing.assert_allclose(r.target, [0.0, 1.45])
    assert r.interventions == ["step_limit"]


def test_widowx_workspace_keeps_the_end_effector_in_the_box(wx_limits):
    f = SafetyFilter(wx_limits, control_period=0.2)
    target = wx_home()
    command = target.copy()
    command[0] = np.pi                                       # swing the waist round to behind the base
    refused = 0
    for k in range(12):
        r = f.filter(command, target, now=0.2 * k)
        assert inside(wx_limits, r.target)
        refused += "workspace" in r.interventions
        target = r.target
    assert refused > 0 and f.counts["workspace"] == refused
    assert 0.0 < target[0] < np.pi / 2 + 1e-9                 # stopped at the y = 0.30 m wall


# --- watchdog -----------------------------------------------------------------------------------

def test_watchdog_holds_the_measured_position_then_resumes():
    f = toy_filter()
    f.filter([0.1, 0.0], [0.0, 0.0], now=0.0)
    r = f.tick([0.08, 0.0], now=0.3)
    np.testing.assert_allclose(r.target, [0.1, 0.0])
    assert r.interventions == [] and r.state == "normal"
    r = f.tick([0.07, 0.01], now=0.6)                       # 0.6 s > 0.5 s without a command
    np.testing.assert_allclose(r.target, [0.07, 0.01])        # the measured position, not the stale target
    assert r.interventions == ["watchdog_hold"] and r.state == "watchdog_hold"
    r = f.tick([0.06, 0.0], now=0.7)                        # keeps the hold, counted once
    np.testing.assert_allclose(r.target, [0.07, 0.01])
    assert r.interventions == [] and f.counts["watchdog_hold"] == 1
    r = f.filter([0.5, 0.0], [0.06, 0.0], now=0.8)           # resumes, rate limited from measured
    np.testing.assert_allclose(r.target, [0.21, 0.0])
    assert r.state == "normal" and r.interventions == ["step_limit"]
    assert f.tick([0.2, 0.0], now=0.9).interventions == []


def test_stale_reference_is_replaced_by_the_measured_position_without_tick():
    f = toy_filter()
    f.filter([0.1, 0.0], [0.0, 0.0], now=0.0)
    r = f.filter([0.5, 0.0], [-0.2, 0.0], now=2.0)            # arm drifted while no command came
    np.testing.assert_allclose(r.target, [-0.05, 0.0])        # one step from measured, not from 0.1


def test_tick_before_any_command_holds_the_first_measured_position():
    f = toy_filter()
    r = f.tick([0.2, 0.1], now=0.0)
    np.testing.assert_allclose(r.target, [0.2, 0.1])
    r = f.tick([0.19, 0.1], now=5.0)
    np.testing.assert_allclose(r.target, [0.2, 0.1])
    assert r.state == "idle" and sum(f.counts.values()) == 0


# --- e-stop -------------------------------------------------------------------------------------

def test_estop_latches_until_reset_then_the_first_command_is_rate_limited():
    f = toy_filter()
    f.filter([0.1, 0.0], [0.0, 0.0], now=0.0)
    f.estop("operator pressed the button")
    rng = np.random.default_rng(0)
    for k in range(30):
        measured = [0.09 + 0.001 * k, 0.0]
        t = 0.1 * (k + 1)
        r = f.filter(rng.uniform(-1, 1, 2), measured, now=t) if k % 2 else f.tick(measured, now=t)
        np.testing.assert_allclose(r.target, [0.09, 0.0])      # measured at the first call after estop()
        assert r.interventions == ["estop_hold"] and r.state == "estop"
    assert f.counts["estop_hold"] == 30 and f.counts["watchdog_hold"] == 0
    report = f.report()
    assert report["estop_latched"] is True and report["estop_reason"] == "operator pressed the button"
    f.reset_estop()
    assert not f.estopped
    r = f.tick([0.12, 0.0], now=3.1)
    np.testing.assert_allclose(r.target, [0.09, 0.0])          # still holding until a command comes
    assert r.interventions == []
    r = f.filter([1.0, 0.0], [0.12, 0.0], now=3.2)
    np.testing.assert_allclose(r.target, [0.27, 0.0])          # one step from the measured 0.12
    assert r.interventions == ["step_limit"]


def test_quick_reset_still_starts_from_the_measured_position():
    f = toy_filter()
    f.filter([0.1, 0.0], [0.0, 0.0], now=0.0)
    f.estop("glitch", measured_q=[0.09, 0.0])
    f.reset_estop()
    r = f.filter([1.0, 0.0], [0.12, 0.0], now=0.15)         # well inside the watchdog timeout
    np.testing.assert_allclose(r.target, [0.27, 0.0])        # from measured 0.12, not the hold 0.09


def test_estop_with_measured_position_holds_it_and_keeps_the_first_reason():
    f = toy_filter()
    f.estop("collision detected", measured_q=[0.3, 0.3])
    f.estop("second press")
    r = f.filter([0.0, 0.0], [0.5, 0.5], now=0.0)
    np.testing.assert_allclose(r.target, [0.3, 0.3])
    assert f.report()["estop_reason"] == "collision detected"


# --- counts and report --------------------------------------------------------------------------

def test_counts_match_the_interventions_of_a_mixed_session():
    f = toy_filter()
    seen = []
    script = [
        ("filter", [0.05, 0.0], [0.0, 0.0], 0.0),    # accepted
        ("filter", [NAN, 0.0], [0.05, 0.0], 0.1),    # nan_rejected
        ("filter", [5.0, 0.0], [0.05, 0.0], 0.2),    # joint_limit + step_limit
        ("tick", None, [0.2, 0.0], 0.9),             # watchdog_hold
        ("tick", None, [0.2, 0.0], 1.0),             # nothing new
        ("filter", [0.2, 1.2], [0.2, 0.0], 1.1),     # step_limit (from measured)
    ]
    for kind, command, measured, now in script:
        r = f.filter(command, measured, now) if kind == "filter" else f.tick(measured, now)
        seen += r.interventions
    expected = {"nan_rejected": 1, "joint_limit": 1, "step_limit": 2, "velocity_limit": 0, "workspace": 0,
                "watchdog_hold": 1, "estop_hold": 0}
    assert f.counts == expected
    assert sorted(seen) == sorted(k for k, n in expected.items() for _ in range(n))
    report = f.report(now=1.4)
    assert {k: report[k] for k in expected} == expected
    assert report["time_since_last_command"] == pytest.approx(0.3)
    assert report["estop_latched"] is False and report["estop_reason"] == ""


# --- bad input ----------------------------------------------------------------------------------

def test_wrong_command_length_names_the_joints():
    f = toy_filter()
    with pytest.raises(SafetyError, match=r"command_q: expected 2 .*'j0', 'j1'.*found shape \(3,\)"):
        f.filter([0.0, 0.0, 0.0], [0.0, 0.0], now=0.0)
    with pytest.raises(SafetyError, match="measured_q: expected 2"):
        f.tick([0.0], now=0.0)


def test_widowx_wrong_length_names_the_gripper(wx_limits):
    f = SafetyFilter(wx_limits, control_period=0.2)
    with pytest.raises(SafetyError, match=r"expected 7 .*'gripper'"):
        f.filter(np.zeros(6), wx_home(), now=0.0)


def test_non_finite_measurement_is_an_error_not_a_target():
    f = toy_filter()
    with pytest.raises(SafetyError, match="measured_q: non-finite"):
        f.filter([0.0, 0.0], [NAN, 0.0], now=0.0)


def test_limits_with_lower_above_upper_name_the_joint():
    with pytest.raises(SafetyError, match=r"joint 'j1': lower limit 2.0 is above upper limit -2.0"):
        toy_limits(lower=[-1.0, 2.0], upper=[1.0, -2.0])


@pytest.mark.parametrize("overrides, message", [
    ({"max_step": [0.1, 0.0]}, r"max_step must be > 0 .*\['j1'\]"),
    ({"max_velocity": -1.0}, r"max_velocity must be > 0"),
    ({"lower": [-1.0]}, r"lower: expected 2 values"),
    ({"upper": [1.0, NAN]}, r"upper: expected finite values"),
    ({"watchdog_timeout": 0.0}, r"watchdog_timeout must be a positive"),
    ({"fk": None}, r"fk, workspace_low and workspace_high together"),
    ({"workspace_low": [3.0, -1.0, -1.0]}, r"workspace box: low"),
])
def test_bad_limits_are_refused(overrides, message):
    with pytest.raises(SafetyError, match=message):
        toy_limits(**overrides)


def test_bad_control_period_is_refused():
    with pytest.raises(SafetyError, match="control_period"):
        SafetyFilter(toy_limits(), control_period=0.0)


# --- WidowX limits and the import rule ----------------------------------------------------------

def test_widowx_limits_follow_the_robot_spec(wx_limits):
    from robot_rl.sim.widowx.robot import HOME_EE_POS, JOINT_NAMES

    assert wx_limits.joint_names == JOINT_NAMES
    np.testing.assert_allclose(np.rad2deg(wx_limits.lower[:6]), [-180, -108, -123, -180, -100, -180])
    np.testing.assert_allclose(np.rad2deg(wx_limits.upper[:6]), [180, 114, 92, 180, 123, 180])
    assert (wx_limits.lower[6], wx_limits.upper[6]) == pytest.approx((0.015, 0.037))
    np.testing.assert_allclose(wx_limits.max_step[:6], np.pi / 2 * 0.2)
    assert wx_limits.max_velocity[:6].max() < 4.8               # below the XM430-W350 no-load speed
    np.testing.assert_allclose(wx_limits.fk(wx_home()), HOME_EE_POS, atol=2e-3)


def test_safety_module_imports_without_ros_torch_or_mujoco():
    code = ("import sys, robot_rl.drivers.safety; "
            "bad = [m for m in ('rclpy', 'torch', 'mujoco') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
