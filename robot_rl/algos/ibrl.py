"""IBRL (Hu, Mirchandani, Sadigh 2023, "Imitation Bootstrapped Reinforcement Learning"): behaviour
cloning first, then RLPD-style online RL in which the frozen BC policy proposes an action beside the
RL actor's, and the critic picks:

    acting:     a = argmax over {pi(s), bc(s)} of Q(s, a)          (min over the ensemble)
    TD target:  r + discount * max over {pi(s'), bc(s')} of Q'(s', a')   (min over a random target subset)

so that the RL actor takes over state by state once its actions score higher. (The paper's aim is to
start online RL at imitation's level; here it still dips at the switch while the critic is young: README,
learner.) The actor, critic and temperature train as in SAC; batches mix offline and online data as
RLPD's do. IBRL builds on TD3, so the target backs up no entropy (``backup_entropy`` must be false).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from robot_rl.algos.batch import Batch
from robot_rl.algos.bc import BC, BCConfig
from robot_rl.algos.plan import Phase
from robot_rl.algos.sac import SAC, SACConfig


@dataclass
class IBRLConfig(SACConfig):
    bc_lr: float = 1e-3              # the BC policy's Adam rate (bc.yaml's)
    backup_entropy: bool = False     # IBRL's target is a max over proposals with no entropy term

    def __post_init__(self):
        if self.backup_entropy:
            raise ValueError("algo=ibrl: the TD target takes the max over the BC and RL proposals and backs up no "
                             "entropy; set algo.agent.backup_entropy=false")


def plan(schedule) -> list[Phase]:
    """Behaviour cloning for ``bc_updates`` on the offline data, then online RL with ``offline_ratio``."""
    return [Phase("imitation", updates=schedule.bc_updates, offline_ratio=1.0),
            Phase("online", env_steps=schedule.online_steps, utd=schedule.utd, offline_ratio=schedule.offline_ratio)]


class IBRL(SAC):
    config_class = IBRLConfig

    def __init__(self, shapes, action_dim, config: IBRLConfig):
        super().__init__(shapes, action_dim, config)
        self.reference = BC(shapes, action_dim, BCConfig(hidden=config.hidden, lr=config.bc_lr, chunk=config.chunk,
                                                         feature_dim=config.feature_dim,
                                                         augment_pad=config.augment_pad,
                                                         normalize_obs=config.normalize_obs))
        self.optimizers["imitation"] = self.reference.optimizers["policy"]
        # True in the imitation phase: act and learn as BC (the critic is untrained). A buffer, so a policy
        # loaded from a checkpoint taken then acts as BC too.
        self.register_buffer("imitating", torch.tensor(False))

    def begin_phase(self, phase: Phase) -> None:
        self.imitating.fill_(phase.name == "imitation")

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        device = self.log_temperature.device
        obs = {k: torch.as_tensor(np.asarray(obs[k]), device=device) for k in self.encoder_keys}
        action = (self.reference(obs) if self.imitating else self.online_action(obs, deterministic)).cpu().numpy()
        return action.reshape(len(action), self.config.chunk, self.action_dim) if self.config.chunk > 1 else action

    def online_action(self, obs: dict[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        """The action once online RL runs: per row the proposal the critic scores higher."""
        rl_action, bc_action, bc_wins = self.proposals(obs, deterministic)
        return torch.where(bc_wins.unsqueeze(-1), bc_action, rl_action)

    @torch.no_grad()
    def proposals(self, obs: dict[str, torch.Tensor], deterministic: bool) -> tuple[torch.Tensor, ...]:
        """The RL actor's action, the BC policy's, and per row whether the critic scores the BC one higher
        (ties go to the RL actor). The score is the ensemble's minimum: the actor climbs the ensemble's mean
        and finds actions the members disagree on; by the mean it won 99% of the demonstrations' states
        on pick-and-place after 15000 steps while failing them."""
        features = self.encoder(obs)
        rl_action = self.actor.mode(features) if deterministic else self.actor.sample(features)[0]
        bc_action = self.reference(obs)
        bc_wins = self.critic(features, bc_action).min(0).values > self.critic(features, rl_action).min(0).values
        return rl_action, bc_action, bc_wins

    def td_target(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            rl_action = self.actor.sample(self.encoder(batch.next_obs))[0]
            bc_action = self.reference(batch.next_obs)
            members = self.critic.random_members(self.config.target_subset)
            next_features = self.target_encoder(batch.next_obs)
            q_rl = self.target_critic(next_features, rl_action, members).min(0).values
            q_bc = self.target_critic(next_features, bc_action, members).min(0).values
            self.bc_share = (q_bc > q_rl).float().mean()  # logged by update(): a by-product, no extra pass
            return batch.reward + batch.discount * torch.maximum(q_rl, q_bc)

    def update(self, batches: list[Batch]) -> dict[str, float]:
        if self.imitating:
            return self.reference.update(batches)
        info = super().update(batches)
        info["bc_chosen_in_target"] = self.bc_share.item()
        return info


Agent = IBRL
