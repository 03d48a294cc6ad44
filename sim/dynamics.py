"""Dynamics knobs: one twin with nominal values plays "sim", a perturbed set stands in for "real".

Scales multiply the model's own (nominal) values, so a set of knobs means the same thing on every
robot. Presets live in ``robot_rl/configs/sim/dynamics/<name>.yaml`` (the Hydra group ``sim/dynamics``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from importlib import resources

import mujoco
import numpy as np
import yaml


@dataclass(frozen=True)
class Dynamics:
    mass_scale: float = 1.0          # every body's mass (and inertia, so the shape stays the same)
    friction_scale: float = 1.0      # every geom's sliding friction
    damping_scale: float = 1.0       # every joint's damping
    gain_scale: float = 1.0          # actuator gains: kp/kv of position servos, motor strength
    action_latency: int = 0          # control steps between a command and its effect
    action_noise: float = 0.0        # std of Gaussian noise on the normalized [-1, 1] action
    sensor_noise: float = 0.0        # std of Gaussian noise on the proprioceptive state
    camera_pos_jitter: float = 0.0   # metres, uniform per axis, drawn at each reset
    camera_rot_jitter: float = 0.0   # radians about a random axis, drawn at each reset

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0 or (f.name.endswith("_scale") and value == 0):
                raise ValueError(f"dynamics knob {f.name}={value}: must be {'> 0' if f.name.endswith('_scale') else '>= 0'}")
        if int(self.action_latency) != self.action_latency:
            raise ValueError(f"dynamics knob action_latency={self.action_latency}: must be a whole number of control steps")

    @classmethod
    def preset(cls, name: str) -> Dynamics:
        """Load a named knob set from the package's ``sim/dynamics`` config group."""
        folder = resources.files("robot_rl") / "configs" / "sim" / "dynamics"
        path = folder / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
            raise ValueError(f"dynamics preset {name!r} not found: expected one of {known}")
        return cls.from_dict(yaml.safe_load(path.read_text()) or {})

    @classmethod
    def from_dict(cls, values: dict) -> Dynamics:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown dynamics knobs {unknown}: expected some of {sorted(known)}")
        return cls(**values)

    @classmethod
    def resolve(cls, dynamics: Dynamics | str | dict | None) -> Dynamics:
        if dynamics is None:
            return cls()
        if isinstance(dynamics, str):
            return cls.preset(dynamics)
        if isinstance(dynamics, dict):
            return cls.from_dict(dict(dynamics))
        return dynamics

    def to_dict(self) -> dict:
        return asdict(self)


class NominalModel:
    """The model's parameters as loaded, so knobs always scale the nominal values, never compound."""

    def __init__(self, model: mujoco.MjModel):
        self.body_mass = model.body_mass.copy()
        self.body_inertia = model.body_inertia.copy()
        self.geom_friction = model.geom_friction.copy()
        self.dof_damping = model.dof_damping.copy()
        self.actuator_gainprm = model.actuator_gainprm.copy()
        self.actuator_biasprm = model.actuator_biasprm.copy()
        self.cam_pos = model.cam_pos.copy()
        self.cam_quat = model.cam_quat.copy()

    def apply(self, model: mujoco.MjModel, dyn: Dynamics, rng: np.random.Generator) -> None:
        model.body_mass[:] = self.body_mass * dyn.mass_scale
        model.body_inertia[:] = self.body_inertia * dyn.mass_scale
        model.geom_friction[:] = self.geom_friction
        model.geom_friction[:, 0] *= dyn.friction_scale
        model.dof_damping[:] = self.dof_damping * dyn.damping_scale
        # Position servos have force = kp * ctrl - kp * q - kv * qdot: gain and bias scale together.
        model.actuator_gainprm[:] = self.actuator_gainprm
        model.actuator_gainprm[:, 0] *= dyn.gain_scale
        model.actuator_biasprm[:] = self.actuator_biasprm
        model.actuator_biasprm[:, 1:3] *= dyn.gain_scale
        model.cam_pos[:] = self.cam_pos
        model.cam_quat[:] = self.cam_quat
        if dyn.camera_pos_jitter > 0 or dyn.camera_rot_jitter > 0:
            self._jitter_cameras(model, dyn, rng)

    def _jitter_cameras(self, model: mujoco.MjModel, dyn: Dynamics, rng: np.random.Generator) -> None:
        for cam in range(model.ncam):
            model.cam_pos[cam] += rng.uniform(-dyn.camera_pos_jitter, dyn.camera_pos_jitter, 3)
            axis = rng.normal(size=3)
            turn = np.zeros(4)
            mujoco.mju_axisAngle2Quat(turn, axis / np.linalg.norm(axis), rng.uniform(-1, 1) * dyn.camera_rot_jitter)
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, turn, self.cam_quat[cam])
            model.cam_quat[cam] = quat
