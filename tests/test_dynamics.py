"""Dynamics knobs: presets, validation, and how they change a real MuJoCo model."""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from robot_rl.sim import Dynamics
from robot_rl.sim.dynamics import NominalModel

SCENE = """
<mujoco>
  <worldbody>
    <camera name="cam" pos="0 -1 1" xyaxes="1 0 0 0 1 1"/>
    <body name="link"><joint name="hinge" damping="0.5"/><geom type="capsule" size="0.02 0.2" mass="1"/></body>
  </worldbody>
  <actuator><position joint="hinge" kp="10" kv="1"/></actuator>
</mujoco>"""


def test_presets_load_and_differ():
    assert Dynamics.preset("nominal") == Dynamics()
    perturbed = Dynamics.preset("perturbed")
    assert perturbed != Dynamics() and perturbed.action_latency >= 1


@pytest.mark.parametrize("values,match", [({"mass_scael": 1.0}, "unknown dynamics knobs"),
                                          ({"mass_scale": 0.0}, "must be > 0"),
                                          ({"action_noise": -1.0}, "must be >= 0"),
                                          ({"action_latency": 1.5}, "whole number")])
def test_bad_knobs_are_refused_by_name(values, match):
    with pytest.raises(ValueError, match=match):
        Dynamics.from_dict(values)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="nominal"):
        Dynamics.preset("marsgravity")


def test_knobs_scale_the_nominal_model_without_compounding():
    model = mujoco.MjModel.from_xml_string(SCENE)
    nominal = NominalModel(model)
    knobs = Dynamics(mass_scale=2.0, friction_scale=0.5, damping_scale=3.0, gain_scale=0.5)
    for _ in range(3):  # every reset applies the knobs to the nominal values again
        nominal.apply(model, knobs, np.random.default_rng(0))
    assert model.body_mass[1] == pytest.approx(2.0)
    assert model.geom_friction[0, 0] == pytest.approx(0.5)
    assert model.dof_damping[0] == pytest.approx(1.5)
    assert model.actuator_gainprm[0, 0] == pytest.approx(5.0)
    assert model.actuator_biasprm[0, 1:3] == pytest.approx([-5.0, -0.5])
    nominal.apply(model, Dynamics(), np.random.default_rng(0))
    assert model.body_mass[1] == pytest.approx(1.0) and model.actuator_gainprm[0, 0] == pytest.approx(10.0)


def test_camera_jitter_is_seeded_and_bounded():
    model = mujoco.MjModel.from_xml_string(SCENE)
    nominal = NominalModel(model)
    knobs = Dynamics(camera_pos_jitter=0.01, camera_rot_jitter=0.05)
    nominal.apply(model, knobs, np.random.default_rng(7))
    first = model.cam_pos.copy(), model.cam_quat.copy()
    nominal.apply(model, knobs, np.random.default_rng(7))
    np.testing.assert_array_equal(model.cam_pos, first[0])
    np.testing.assert_array_equal(model.cam_quat, first[1])
    assert 0 < np.abs(model.cam_pos - nominal.cam_pos).max() <= 0.01
    angle = 2 * np.arccos(min(1.0, abs(float(np.dot(model.cam_quat[0], nominal.cam_quat[0])))))
    assert 0 < angle <= 0.05 + 1e-9
