"""The WidowX twin backend (the driver's MuJoCo backend): its dynamics knobs as a "real" stand-in."""
from __future__ import annotations

import time

import numpy as np

from robot_rl.drivers.widowx.twin_backend import WidowXTwinBackend


def test_action_latency_delays_each_write_by_that_many_control_periods():
    backend = WidowXTwinBackend(task="reach", seed=1, dynamics={"action_latency": 2}, control_period=0.1)
    backend.connect()
    try:
        backend.set_torque(True)
        held = backend.data.ctrl[backend._ctrl].copy()
        target = backend.read().position + np.array([0.3, 0, 0, 0, 0, 0, 0])
        written = time.monotonic()
        backend.write(target)
        time.sleep(0.1)
        np.testing.assert_allclose(backend.data.ctrl[backend._ctrl], held)  # not yet: due 0.2 s after the write
        while not np.allclose(backend.data.ctrl[backend._ctrl], target):
            assert time.monotonic() - written < 1.0, "the delayed write never reached the actuators"
            time.sleep(0.005)
        assert time.monotonic() - written >= 0.2
    finally:
        backend.close()


def test_without_latency_a_write_reaches_the_actuators_at_once():
    backend = WidowXTwinBackend(task="reach", seed=1, dynamics="perturbed", control_period=0.2)
    assert backend.action_delay_s == 0.2  # the preset's one control step
    nominal = WidowXTwinBackend(task="reach", seed=1)
    try:
        nominal.set_torque(True)
        target = nominal.read().position + 0.1
        nominal.write(target)
        np.testing.assert_allclose(nominal.data.ctrl[nominal._ctrl], target)
    finally:
        backend.close()
        nominal.close()
