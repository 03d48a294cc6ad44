"""Residual RL on a behaviour-cloned policy (after Policy Decorator, Yuan et al. 2024, and residual
policy learning, Silver et al. 2018): BC first, then online SAC whose actor outputs a bounded correction
to the frozen BC policy's action,

    a = clip(bc(s) + residual_scale * r,  -1, 1),   r ~ pi(s) in [-1, 1]^A

The critic scores the executed action ``a`` (data actions included), so its TD target and the actor's
objective are SAC's with ``a`` composed this way (:meth:`executed`). A small ``residual_scale`` keeps
every action near the demonstrations' from the first online step, so the policy starts near BC's level
(IBRL, which picks between whole actions, falls to 0% at that switch: README, learner). A critic-only warmup comes first
online, so the residual does not climb a young critic's errors. The BC phase and the batches are IBRL's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from robot_rl.algos.batch import Batch
from robot_rl.algos.ibrl import IBRL, IBRLConfig
from robot_rl.algos.ibrl import plan as ibrl_plan
from robot_rl.algos.sac import SAC

plan = ibrl_plan  # IBRL's phases: BC, the critic warmup (residual.yaml: 3000 steps), online RL


@dataclass
class ResidualConfig(IBRLConfig):
    residual_scale: float = 0.1      # the largest correction per action dimension, in [-1, 1] action units
    backup_entropy: bool = True      # SAC's target (IBRL's no-entropy max does not apply here)

    def __post_init__(self):
        if self.proposer != "bc":
            raise ValueError(f"algo=residual: the residual corrects a BC policy; set algo.agent.proposer=bc, "
                             f"found {self.proposer!r}")
        if not 0.0 < self.residual_scale <= 2.0:
            raise ValueError(f"algo.agent.residual_scale: expected 0 < scale <= 2 (action units), "
                             f"found {self.residual_scale}")


class Residual(IBRL):
    config_class = ResidualConfig

    def executed(self, obs: dict[str, torch.Tensor], residual: torch.Tensor) -> torch.Tensor:
        """The executed action: BC's (frozen: no gradient) plus the scaled residual, clipped to the action box."""
        with torch.no_grad():
            bc_action = self.reference(obs)
        return (bc_action + self.config.residual_scale * residual).clamp(-1.0, 1.0)

    def online_action(self, obs: dict[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        features = self.encoder(obs)
        residual = self.actor.mode(features) if deterministic else self.actor.sample(features)[0]
        return self.executed(obs, residual)

    td_target = SAC.td_target  # SAC's on the executed next action, not IBRL's max over proposals

    def actor_loss(self, features: torch.Tensor, batch: Batch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """SAC's objective on the composed action: alpha log pi(r|s) - mean over the ensemble of Q(s, a)."""
        residual, log_prob = self.actor.sample(features)
        q = self.critic(features, self.executed(batch.obs, residual)).mean(0)
        return (self.temperature.detach() * log_prob - q).mean(), log_prob


Agent = Residual
