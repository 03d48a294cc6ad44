"""H2O (Niu et al. 2022, "When to Trust Your Simulator: Dynamics-Aware Hybrid Offline-and-Online
Reinforcement Learning"): SAC on batches that are part real (the offline store given by ``dataset=``)
and part sim (the run's own online episodes on the twin), which trusts a sim transition less the more
the simulator's dynamics disagree with the real data there.

Two discriminators classify real (class 0) against sim (class 1): D_sa(s, a) and D_sas(s, a, s'), each
two logits bounded to [-2, 2], trained every critic step with cross-entropy on the batch's real and sim
rows, with Gaussian noise on their inputs. With p_sa = softmax(D_sa) and p_sas = softmax(D_sa + D_sas),

    P_real / P_sim (s' | s, a) = p_sas(real) p_sa(sim) / (p_sas(sim) p_sa(real))          (Bayes' rule)

and the critic loss is

    mean_real (Q - y)^2  +  mean_sim clip(P_real/P_sim, 1e-5, 1) (Q - y)^2
    + beta * [ logsumexp_sim (Q(s, a) + log w(s, a))  -  mean_real Q(s, a) ]

where u(s, a) is the mean over a few s~ = s' + noise * (real state std) of log(P_sim/P_real)(s~|s, a),
clipped to [u_min, u_max], and w = u / sum(u) over the sim rows: the penalty pushes Q down where the
dynamics gap is large and up on the real data. Actor and temperature are SAC's, on real and sim states.
Constants, with their sources, are in ``configs/algo/h2o.yaml``.

The discriminators read ``discriminator_keys`` (low-dimensional keys the networks read, concatenated
as the encoder does; ``None``: all of them), never camera images: dynamics show in proprioception, and
an image classifier would learn rendering gaps. The default config gives only ``state``: ``task_state``
holds per-episode goals (the car's goal point, the reach target), by which a discriminator memorizes the
few real episodes instead of learning dynamics (on the car: train loss 0.03, held-out accuracy 0.55).
The real data's state std is a running estimate over the real rows the agent has been trained on
(uniform draws from the store, so it converges to the store's std); it is saved with the weights.
``next_obs`` is whatever the sampler gives: with ``n_step > 1`` the discriminators compare n-step
transitions, so keep ``n_step: 1`` (the default) for the ratio to mean one-step dynamics.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.algos.batch import Batch
from robot_rl.algos.ops import masked_mean, optimizer_step
from robot_rl.algos.plan import Phase, split_budget
from robot_rl.algos.sac import SAC, SACConfig
from robot_rl.nets import mlp

REAL, SIM = 0, 1  # discriminator classes, and Batch.source: 0 = offline = real, 1 = online = sim


@dataclass
class H2OConfig(SACConfig):
    discriminator_keys: tuple[str, ...] | None = None  # state keys D reads; None: all the networks read
    discriminator_hidden: tuple[int, ...] = (256, 256)
    discriminator_lr: float = 3e-4
    discriminator_noise: float = 0.1   # std of the Gaussian noise on D's inputs while training it
    logit_bound: float = 2.0           # D outputs bound * tanh(.)
    ratio_min: float = 1e-5            # clip of P_real/P_sim on sim TD errors
    ratio_max: float = 1.0
    gap_samples: int = 10              # perturbed next states per sim row for u(s, a)
    gap_noise_scale: float = 1.0       # their noise std, in units of the real state std
    gap_min: float = 1e-30             # clip of u(s, a): > 0 so log w is finite
    gap_max: float = 10.0
    penalty_weight: float = 0.01       # beta
    penalty_temperature: float = 1.0   # logsumexp temperature
    penalty_clip: float = 1000.0       # |penalty gap| bound before beta
    std_eps: float = 1e-3              # added to the real state std

    @classmethod
    def from_dict(cls, d) -> H2OConfig:
        d = dict(d)
        for key in ("discriminator_hidden", "discriminator_keys"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return super().from_dict(d)

    def __post_init__(self):
        checks = {"ratio_min": 0 < self.ratio_min <= self.ratio_max, "gap_min": 0 < self.gap_min <= self.gap_max,
                  "gap_samples": self.gap_samples >= 1, "logit_bound": self.logit_bound > 0,
                  "penalty_temperature": self.penalty_temperature > 0}
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"algo.agent.{key}={getattr(self, key)} is out of range: need 0 < ratio_min <= "
                                 "ratio_max, 0 < gap_min <= gap_max, gap_samples >= 1, logit_bound > 0 and "
                                 "penalty_temperature > 0")


def plan(schedule) -> list[Phase]:
    """Optional uniform-random sim steps, then online SAC on batches that are ``real_ratio`` real data."""
    if not 0.0 < schedule.real_ratio < 1.0:
        raise ValueError(f"algo.schedule.real_ratio={schedule.real_ratio}: H2O needs real and sim rows in every "
                         "batch, so the real share must be strictly between 0 and 1 (the paper uses 0.5)")
    return [Phase("random", env_steps=schedule.random_steps, learn=False, random_actions=True),
            Phase("online", env_steps=split_budget(schedule.online_steps, schedule.random_steps, "online_steps",
                                                   "random_steps"), utd=schedule.utd, offline_ratio=schedule.real_ratio)]


# --- the pieces, as functions of plain tensors ---------------------------------------------------------
class Discriminator(nn.Module):
    """An MLP to two logits (real, sim), bounded to [-bound, bound]."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], bound: float):
        super().__init__()
        self.net, self.bound = mlp(in_features, hidden, 2), bound

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return self.bound * torch.tanh(self.net(torch.cat(parts, dim=-1)))


def log_real_over_sim(sa_logits: torch.Tensor, sas_logits: torch.Tensor) -> torch.Tensor:
    """log P_real/P_sim (s'|s, a) = log p_sas(real) - log p_sas(sim) - log p_sa(real) + log p_sa(sim),
    with p_sas = softmax(D_sa + D_sas). Logits [B, 2] -> [B]."""
    log_sa = F.log_softmax(sa_logits, dim=-1)
    log_sas = F.log_softmax(sa_logits + sas_logits, dim=-1)
    return (log_sas[:, REAL] - log_sas[:, SIM]) - (log_sa[:, REAL] - log_sa[:, SIM])


def dynamics_ratio(sa_logits: torch.Tensor, sas_logits: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """P_real/P_sim clipped to [low, high]: the weight of a sim row's squared TD error."""
    return log_real_over_sim(sa_logits, sas_logits).exp().clamp(low, high)


def dynamics_gap(log_sim_over_real: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """u(s, a): [B, n] log P_sim/P_real at n perturbed next states -> their mean, clipped, [B]."""
    return log_sim_over_real.mean(dim=1).clamp(low, high)


def gap_weights(u: torch.Tensor) -> torch.Tensor:
    """w = u / sum(u) over the sim rows."""
    return u / u.sum()


def gap_penalty(q_sim: torch.Tensor, weights: torch.Tensor, q_real: torch.Tensor, temperature: float,
                clip: float) -> torch.Tensor:
    """Mean over members of clip(t logsumexp_sim((Q + log w) / t) - mean_real Q, -clip, clip).
    q_sim [E, Bs], weights [Bs], q_real [E, Br]."""
    soft_max = temperature * torch.logsumexp((q_sim + weights.log()) / temperature, dim=1)
    return (soft_max - q_real.mean(dim=1)).clamp(-clip, clip).mean()


def discriminator_losses(sa_logits: torch.Tensor, sas_logits: torch.Tensor, source: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of D_sa and of D_sa + D_sas against ``source`` (0 real, 1 sim): the mean over real
    rows plus the mean over sim rows, so either class counts the same whatever the batch's mix."""
    def balanced(logits):
        per_row = F.cross_entropy(logits, source, reduction="none")
        return sum(per_row[source == c].mean() for c in (REAL, SIM))
    return balanced(sa_logits), balanced(sa_logits + sas_logits)


# --- the agent -------------------------------------------------------------------------------------------
class H2O(SAC):
    config_class = H2OConfig

    def __init__(self, shapes, action_dim, config: H2OConfig):
        super().__init__(shapes, action_dim, config)
        keys = tuple(shapes.state) if config.discriminator_keys is None else config.discriminator_keys
        missing = [k for k in keys if k not in shapes.state]
        if missing or not keys:
            raise ValueError(f"algo.agent.discriminator_keys={list(keys)}: the discriminators read low-dimensional "
                             f"keys the networks read, which are {list(shapes.state)} (obs_keys; cameras are "
                             f"never used){'; not there: ' + str(missing) if missing else ''}; give a subset of them")
        self.discriminator_keys = keys
        state_dim, flat_action = sum(shapes.state[k] for k in keys), action_dim * config.chunk
        self.d_sa = Discriminator(state_dim + flat_action, config.discriminator_hidden, config.logit_bound)
        self.d_sas = Discriminator(2 * state_dim + flat_action, config.discriminator_hidden, config.logit_bound)
        # One optimizer over both: the D_sas loss goes through D_sa's logits too, as in the reference code.
        self.optimizers["discriminator"] = torch.optim.Adam(
            [*self.d_sa.parameters(), *self.d_sas.parameters()], lr=config.discriminator_lr)
        self.register_buffer("real_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("real_sum", torch.zeros(state_dim, dtype=torch.float64))
        self.register_buffer("real_sum_sq", torch.zeros(state_dim, dtype=torch.float64))

    # --- inputs -----------------------------------------------------------------------------------
    def states(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([obs[k].float().flatten(1) for k in self.discriminator_keys], dim=-1)

    def observe_real_states(self, states: torch.Tensor) -> None:
        x = states.detach().double()
        self.real_count += len(x)
        self.real_sum += x.sum(0)
        self.real_sum_sq += x.pow(2).sum(0)

    @property
    def real_state_std(self) -> torch.Tensor:
        if self.real_count == 0:
            raise RuntimeError("H2O: no real transitions seen yet, so the real state std is unknown")
        mean = self.real_sum / self.real_count
        var = (self.real_sum_sq / self.real_count - mean.pow(2)).clamp(min=0.0)
        return (var.sqrt() + self.config.std_eps).float()

    @staticmethod
    def sources(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        real, sim = batch.source == REAL, batch.source == SIM
        if not real.any() or not sim.any():
            raise ValueError(f"H2O needs real (source 0) and sim (source 1) rows in every batch, found "
                             f"{int(real.sum())} real and {int(sim.sum())} sim; sample with 0 < real_ratio < 1")
        return real, sim

    # --- discriminators ---------------------------------------------------------------------------
    def logits(self, s, a, s_next) -> tuple[torch.Tensor, torch.Tensor]:
        return self.d_sa(s, a), self.d_sas(s, a, s_next)

    def discriminator_step(self, batch: Batch) -> dict[str, float]:
        s, a, s_next = self.states(batch.obs), batch.action, self.states(batch.next_obs)
        noise = self.config.discriminator_noise
        if noise > 0:
            s, a, s_next = (x + noise * torch.randn_like(x) for x in (s, a, s_next))
        sa_loss, sas_loss = discriminator_losses(*self.logits(s, a, s_next), batch.source)
        optimizer_step(self.optimizers["discriminator"], sa_loss + sas_loss)
        return {"d_sa_loss": sa_loss.item(), "d_sas_loss": sas_loss.item()}

    @torch.no_grad()
    def sim_trust(self, s, a, s_next) -> tuple[torch.Tensor, torch.Tensor]:
        """(clipped P_real/P_sim, u(s, a)) for sim rows."""
        cfg, n = self.config, self.config.gap_samples
        ratio = dynamics_ratio(*self.logits(s, a, s_next), cfg.ratio_min, cfg.ratio_max)
        s_n, a_n = s.repeat_interleave(n, 0), a.repeat_interleave(n, 0)
        s_next_n = s_next.repeat_interleave(n, 0)
        s_next_n = s_next_n + torch.randn_like(s_next_n) * self.real_state_std * cfg.gap_noise_scale
        log_sim_over_real = -log_real_over_sim(*self.logits(s_n, a_n, s_next_n))
        return ratio, dynamics_gap(log_sim_over_real.reshape(-1, n), cfg.gap_min, cfg.gap_max)

    # --- learning ---------------------------------------------------------------------------------
    def critic_step(self, batch: Batch) -> dict[str, float]:
        real, _ = self.sources(batch)
        self.observe_real_states(self.states(batch.obs)[real])
        info = self.discriminator_step(batch)
        info.update(super().critic_step(batch))
        return info

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        real, sim = self.sources(batch)
        target = self.td_target(batch)
        q = self.critic(self.encoder(batch.obs, augment=True), batch.action)     # [E, B]
        squared = (q - target) ** 2
        ratio, u = self.sim_trust(self.states(batch.obs)[sim], batch.action[sim], self.states(batch.next_obs)[sim])
        td_real = masked_mean(squared[:, real], batch.valid[real])
        td_sim = masked_mean(squared[:, sim] * ratio, batch.valid[sim])
        gap = gap_penalty(q[:, sim], gap_weights(u), q[:, real], cfg.penalty_temperature, cfg.penalty_clip)
        loss = td_real + td_sim + cfg.penalty_weight * gap
        return loss, {"critic_loss": loss.item(), "td_real": td_real.item(), "td_sim": td_sim.item(),
                      "h2o_gap": gap.item(), "dynamics_ratio": ratio.mean().item(), "u_sa": u.mean().item(),
                      "q": q.mean().item(), "q_real": q[:, real].mean().item(), "q_sim": q[:, sim].mean().item(),
                      "target_q": target.mean().item()}


Agent = H2O
