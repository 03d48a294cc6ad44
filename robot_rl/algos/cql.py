"""Conservative Q-learning (Kumar et al. 2020) and Cal-QL (Nakamoto et al. 2023) for offline
pretraining: the SAC critic loss plus a penalty that pushes Q down on sampled actions and up on the
dataset's.

    gap = logsumexp over sampled actions a~ of Q(s, a~) (importance-weighted)  -  Q(s, a_data)
    loss = TD loss + alpha * gap           (alpha fixed, or a Lagrange multiplier driving gap to a target)

The sampled actions are ``n_actions`` uniform ones (density 0.5^|A| on [-1, 1]^|A|) and ``n_actions``
policy actions at s and at s' (each weighted by its own 1 / pi), all scored by Q at s (CQL(H)).
Cal-QL clips the policy actions' Q from below by the Monte-Carlo return-to-go of s, so the penalty
never pushes the learned Q under the value of the behaviour policy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from robot_rl.algos.batch import Batch
from robot_rl.algos.ops import conservative_gap, imitation_loss, masked_mean, optimizer_step, q_per_action
from robot_rl.algos.plan import Phase
from robot_rl.algos.sac import SAC, SACConfig

ACTOR_EXTRACTIONS = ("sac", "awr", "weighted_bc")


@dataclass
class CQLConfig(SACConfig):
    cql_alpha: float = 5.0           # penalty weight (Cal-QL / WSRL use 5 on their manipulation tasks)
    n_actions: int = 10              # sampled actions per kind and state (CQL's reference code)
    cql_temperature: float = 1.0     # logsumexp temperature
    lagrange: bool = False           # tune alpha toward target_gap instead of fixing it
    target_gap: float = 5.0          # CQL's "target action gap" (tau) for the Lagrange variant
    calql: bool = False              # Cal-QL: lower-bound policy-action Q by the return-to-go
    bc_weight: float = 0.0           # while conservative: + bc_weight * MSE(tanh(mean), a_data) in the actor loss
    normalize_q_in_actor: bool = False  # with bc_weight, divide the soft-Q term by mean |Q| (TD3+BC, Fujimoto &
                                        # Gu 2021: lambda = 2.5 / mean|Q|, i.e. bc_weight 0.4 here), so the
                                        # imitation term's weight does not depend on the scale of the returns
    actor_extraction: str = "sac"    # while conservative: sac (maximize the soft Q) | awr | weighted_bc (below)
    awr_inverse_temperature: float = 3.0  # awr, weighted_bc: beta in exp(beta * advantage) (IQL's 3, Kostrikov
                                          # et al. 2021)
    awr_max_weight: float = 100.0    # awr, weighted_bc: weights clipped here (IQL, AWAC)


def plan(schedule) -> list[Phase]:
    """Offline pretraining; then, if ``online_steps``, online fine-tuning that keeps the penalty and
    mixes offline and online data (Cal-QL's fine-tuning)."""
    return [Phase("offline", updates=schedule.offline_updates, offline_ratio=1.0, utd=schedule.utd),
            Phase("online", env_steps=schedule.online_steps, utd=schedule.utd,
                  offline_ratio=schedule.online_offline_ratio)]


class CQL(SAC):
    config_class = CQLConfig

    def __init__(self, shapes, action_dim, config: CQLConfig):
        if config.actor_extraction not in ACTOR_EXTRACTIONS:
            raise ValueError(f"algo.agent.actor_extraction={config.actor_extraction!r}: expected one of "
                             f"{ACTOR_EXTRACTIONS}")
        super().__init__(shapes, action_dim, config)
        self.conservative = True  # False: plain SAC loss (WSRL's online phase)
        self.log_cql_alpha = torch.nn.Parameter(torch.tensor(math.log(config.cql_alpha)))
        if config.lagrange:
            self.optimizers["cql_alpha"] = torch.optim.Adam([self.log_cql_alpha], lr=config.critic_lr)

    def begin_phase(self, phase: Phase) -> None:
        self.conservative = phase.conservative

    @property
    def backup_entropy(self) -> bool:
        """CQL and Cal-QL never back up the entropy term; the SAC fine-tuning after them may."""
        return self.config.backup_entropy and not self.conservative

    @property
    def extracting(self) -> bool:
        """Whether the actor learns by ``actor_extraction`` (awr, weighted_bc) now: in conservative phases."""
        return self.conservative and self.config.actor_extraction != "sac"

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        td_loss, info = super().critic_loss(batch)
        if not self.conservative:
            return td_loss, info
        gap = self.conservative_gap(batch)
        cfg = self.config
        if cfg.lagrange:
            alpha = self.log_cql_alpha.exp().clamp(0.0, 1e6)
            penalty = alpha.detach() * (gap - cfg.target_gap)
            self.lagrange_step(-alpha * (gap.detach() - cfg.target_gap))
        else:
            alpha = torch.tensor(cfg.cql_alpha)
            penalty = alpha * gap
        loss = td_loss + penalty
        info.update(critic_loss=loss.item(), td_loss=td_loss.item(), cql_gap=gap.item(), cql_alpha=alpha.item())
        return loss, info

    def actor_loss(self, features: torch.Tensor, batch: Batch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """SAC's actor loss; in conservative phases with ``bc_weight``, plus that times the MSE of the
        policy's mode to the batch's actions. With ``actor_extraction`` awr or weighted_bc the conservative
        phases regress the data's actions instead (advantage_weighted_loss). WSRL's online SAC drops both."""
        if self.extracting and batch is not None:
            return self.advantage_weighted_loss(features, batch)
        loss, log_prob = super().actor_loss(features)
        if self.conservative and self.config.bc_weight and batch is not None:
            loss = loss + self.config.bc_weight * imitation_loss(self.actor.mode(features), batch, self.action_dim)
        return loss, log_prob

    def advantage_weighted_loss(self, features: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy extraction that only moves toward the data's actions, each weighted by
        exp(beta * (Q(s, a_data) - Q(s, a ~ pi))): at uniform weights it is behaviour cloning, and the
        critic's job is to pick the better of the data's actions. ``awr`` weights their log-likelihood
        (AWR, Peng et al. 2019; AWAC, Nair et al. 2020; IQL, Kostrikov et al. 2021); ``weighted_bc`` weights
        the squared error of the policy's mode to them, BC's own loss, plus the unweighted log-likelihood
        through the log-std outputs alone (``spread_log_prob``), so the spread is fitted for the online
        phase without pulling the mode off BC's fit. Returns the loss and a sample's log pi."""
        cfg = self.config
        action, log_prob = self.actor.sample(features)
        with torch.no_grad():
            advantage = self.critic(features, batch.action).mean(0) - self.critic(features, action).mean(0)
            weight = torch.exp(cfg.awr_inverse_temperature * advantage).clamp(max=cfg.awr_max_weight)
        if cfg.actor_extraction == "awr":
            return -masked_mean(weight * self.actor.log_prob(features, batch.action), batch.valid), log_prob
        squared_error = (self.actor.mode(features) - batch.action).pow(2).sum(-1)
        spread_log_prob = self.actor.spread_log_prob(features, batch.action)
        return masked_mean(weight * squared_error - spread_log_prob, batch.valid), log_prob

    def actor_objective_scale(self, q: torch.Tensor) -> float | torch.Tensor:
        if self.conservative and self.config.bc_weight and self.config.normalize_q_in_actor:
            return 1.0 / q.abs().mean().detach().clamp(min=1e-6)
        return 1.0

    def lagrange_step(self, loss: torch.Tensor) -> None:
        optimizer_step(self.optimizers["cql_alpha"], loss)

    def conservative_gap(self, batch: Batch) -> torch.Tensor:
        """Mean over members and rows of logsumexp_{a~} Q(s, a~) - Q(s, a_data)."""
        cfg, n, b = self.config, self.config.n_actions, len(batch)
        features = self.encoder(batch.obs, augment=True)
        flat_action = self.actor.action_dim
        with torch.no_grad():
            random_actions = (torch.rand(n, b, flat_action) * 2.0 - 1.0).to(features.device)
            actions_s, log_prob_s = self.actor.sample(features.detach().expand(n, *features.shape))
            next_features = self.encoder(batch.next_obs)
            actions_next, log_prob_next = self.actor.sample(next_features.expand(n, *next_features.shape))
        q_random = q_per_action(self.critic, features, random_actions)                # [E, n, B]
        q_s, q_next = q_per_action(self.critic, features, actions_s), q_per_action(self.critic, features, actions_next)
        if cfg.calql:
            q_s, q_next = q_s.clamp(min=batch.mc_return), q_next.clamp(min=batch.mc_return)
        uniform_log_density = -flat_action * math.log(2.0)
        scored = torch.cat([q_random - uniform_log_density, q_s - log_prob_s, q_next - log_prob_next], dim=1)
        return conservative_gap(scored, self.critic(features, batch.action), batch.valid, cfg.cql_temperature)


Agent = CQL
