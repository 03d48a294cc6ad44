"""Soft actor-critic (Haarnoja et al. 2018) with a critic ensemble: the core every algorithm builds on.

One ``update`` is one UTD cycle: ``len(batches)`` critic steps, each on its own minibatch and each
followed by a Polyak step of the targets, then one actor and temperature step on the last minibatch
(as RLPD does). The TD target takes the min over a random subset of the target ensemble (REDQ,
Chen et al. 2021). Subclasses add terms to :meth:`critic_loss` (CQL, Cal-QL, H2O).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from robot_rl.algos.agent import LearningAgent
from robot_rl.algos.batch import Batch
from robot_rl.algos.ops import masked_mean, optimizer_step, polyak_update
from robot_rl.algos.plan import Phase, split_budget
from robot_rl.nets import CriticEnsemble, ObservationEncoder, TanhGaussianActor
from robot_rl.nets.encoders import DRQ_STRIDES


@dataclass
class SACConfig:
    hidden: tuple[int, ...] = (256, 256)
    ensemble_size: int = 2
    target_subset: int = 2           # min over this many random target critics
    layer_norm: bool = False         # LayerNorm in the critic (RLPD)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    tau: float = 0.005               # Polyak step of the targets
    init_temperature: float = 1.0
    target_entropy: float | None = None  # None: -target_entropy_scale * |A|
    target_entropy_scale: float = 1.0    # SAC's -|A| heuristic; RLPD uses 0.5
    backup_entropy: bool = True      # subtract alpha * log pi(a'|s') in the TD target
    chunk: int = 1                   # actions per policy output (h); the critic scores the chunk
    feature_dim: int = 50            # per-camera feature size
    augment_pad: int = 4             # DrQ random shift, pixels
    conv_strides: tuple[int, ...] = DRQ_STRIDES  # one 3x3 conv layer per stride, per camera
    normalize_obs: bool = False      # standardize state inputs by the offline dataset's mean/std (configs: on)
    pre_tanh_reg: float = 0.0        # weight of 0.5 * mean(mu^2 + log_std^2) in the actor loss (the
                                     # original SAC code's policy regularizer, 1e-3 there): keeps the
                                     # Gaussian off tanh's flat tails, where binary actions get stuck

    @classmethod
    def from_dict(cls, d) -> SACConfig:
        return config_from_dict(cls, d)


def config_from_dict(cls, d):
    """An agent config dataclass from ``algo.agent``: unknown keys refused by name, lists made tuples."""
    d = dict(d)
    unknown = sorted(set(d) - set(cls.__dataclass_fields__))
    if unknown:
        raise ValueError(f"agent config: unknown keys {unknown}; expected some of {sorted(cls.__dataclass_fields__)}")
    for key in ("hidden", "conv_strides"):
        if key in d:
            d[key] = tuple(d[key])
    strides = d.get("conv_strides")
    if strides is not None and (not strides or min(strides) < 1):
        raise ValueError(f"algo.agent.conv_strides: expected one stride >= 1 per conv layer, e.g. [2,1,1,1], "
                         f"found {list(strides)}")
    return cls(**d)


@dataclass
class ObservationShapes:
    """What the networks see: state keys with their flat sizes, cameras with (H, W, 3)."""
    state: dict[str, int]
    cameras: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def plan(schedule) -> list[Phase]:
    """Online from scratch: ``random_steps`` of uniform random actions, then SAC at ``utd``."""
    return [Phase("random", env_steps=schedule.random_steps, learn=False, random_actions=True),
            Phase("online", env_steps=split_budget(schedule.online_steps, schedule.random_steps, "online_steps",
                                                   "random_steps"), utd=schedule.utd)]


class SAC(LearningAgent):
    config_class = SACConfig

    def __init__(self, shapes: ObservationShapes, action_dim: int, config: SACConfig):
        super().__init__()
        if not 1 <= config.target_subset <= config.ensemble_size:
            raise ValueError(f"target_subset: expected 1..ensemble_size ({config.ensemble_size}), "
                             f"found {config.target_subset}")
        self.config, self.shapes, self.action_dim = config, shapes, action_dim
        flat_action = action_dim * config.chunk
        self.encoder = ObservationEncoder(shapes.state, shapes.cameras, config.feature_dim, config.augment_pad,
                                          config.normalize_obs, config.conv_strides)
        self.actor = TanhGaussianActor(self.encoder.out_dim, flat_action, config.hidden)
        self.critic = CriticEnsemble(self.encoder.out_dim, flat_action, config.ensemble_size, config.hidden,
                                     config.layer_norm)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_temperature = torch.nn.Parameter(torch.tensor(math.log(config.init_temperature)))
        self.target_entropy = (-config.target_entropy_scale * flat_action if config.target_entropy is None
                               else config.target_entropy)
        self.optimizers = {
            "critic": torch.optim.Adam([*self.encoder.parameters(), *self.critic.parameters()], lr=config.critic_lr),
            "actor": torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr),
            "temperature": torch.optim.Adam([self.log_temperature], lr=config.temperature_lr),
        }

    @property
    def backup_entropy(self) -> bool:
        return self.config.backup_entropy

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    # --- acting -----------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """Actions for a batch of observations: [N, A], or [N, h, A] with chunks."""
        device = self.log_temperature.device
        features = self.encoder({k: torch.as_tensor(np.asarray(obs[k]), device=device) for k in self.encoder_keys})
        action = self.actor.mode(features) if deterministic else self.actor.sample(features)[0]
        action = action.cpu().numpy()
        return action.reshape(len(action), self.config.chunk, self.action_dim) if self.config.chunk > 1 else action

    # --- learning ---------------------------------------------------------------------------
    def update(self, batches: list[Batch]) -> dict[str, float]:
        for batch in batches:
            info = self.critic_step(batch)
        info.update(self.actor_step(batches[-1]))
        return info

    def critic_step(self, batch: Batch) -> dict[str, float]:
        loss, info = self.critic_loss(batch)
        optimizer_step(self.optimizers["critic"], loss)
        self.polyak_update()
        return info

    def td_target(self, batch: Batch) -> torch.Tensor:
        """r + discount * (min over a random target subset of Q'(s', a') - alpha log pi(a'|s'))."""
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(self.encoder(batch.next_obs))
            next_action = self.executed(batch.next_obs, next_action)
            members = self.critic.random_members(self.config.target_subset)
            next_q = self.target_critic(self.target_encoder(batch.next_obs), next_action, members).min(0).values
            if self.backup_entropy:
                next_q = next_q - self.temperature * next_log_prob
            return batch.reward + batch.discount * next_q

    def executed(self, obs: dict[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """The action the robot gets when the actor outputs ``action`` at ``obs``: the same here; residual RL
        adds it to a frozen policy's."""
        return action

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over members and valid rows of the squared TD error."""
        target = self.td_target(batch)
        features = self.encoder(batch.obs, augment=True)
        q = self.critic(features, batch.action)
        loss = masked_mean((q - target) ** 2, batch.valid)
        return loss, {"critic_loss": loss.item(), "q": q.mean().item(), "target_q": target.mean().item()}

    def actor_loss(self, features: torch.Tensor, batch: Batch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha log pi(a|s) - mean over the ensemble of Q(s, a), a ~ pi(s), plus the optional pre-tanh
        regularizer; also returns log pi. ``batch`` is for subclasses' terms on the data's actions."""
        action, log_prob = self.actor.sample(features)
        q = self.critic(features, action).mean(0)
        loss = (self.temperature.detach() * log_prob - q).mean() * self.actor_objective_scale(q)
        if self.config.pre_tanh_reg:
            mean, log_std = self.actor(features)
            loss = loss + self.config.pre_tanh_reg * 0.5 * (mean.pow(2) + log_std.pow(2)).mean()
        return loss, log_prob

    def actor_objective_scale(self, q: torch.Tensor) -> float | torch.Tensor:
        """A factor on the soft-Q part of the actor loss: 1 here; subclasses that add an imitation term
        scale it to put the two on a fixed footing."""
        return 1.0

    def temperature_loss(self, log_prob: torch.Tensor) -> torch.Tensor:
        """alpha * (entropy - target entropy): raises alpha when the entropy is below target."""
        entropy = -log_prob.detach().mean()
        return self.temperature * (entropy - self.target_entropy)

    def actor_step(self, batch: Batch) -> dict[str, float]:
        with torch.no_grad():
            features = self.encoder(batch.obs, augment=True)  # the actor does not train the encoder
        self.critic.requires_grad_(False)
        actor_loss, log_prob = self.actor_loss(features, batch)
        self.critic.requires_grad_(True)
        temperature_loss = self.temperature_loss(log_prob)
        optimizer_step(self.optimizers["actor"], actor_loss)
        optimizer_step(self.optimizers["temperature"], temperature_loss)
        return {"actor_loss": actor_loss.item(), "temperature": self.temperature.item(),
                "entropy": -log_prob.mean().item(), "temperature_loss": temperature_loss.item()}

    def polyak_update(self) -> None:
        polyak_update(((self.critic, self.target_critic), (self.encoder, self.target_encoder)), self.config.tau)


Agent = SAC
