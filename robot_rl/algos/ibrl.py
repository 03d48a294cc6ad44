"""IBRL (Hu, Mirchandani, Sadigh 2023, "Imitation Bootstrapped Reinforcement Learning"): behaviour
cloning first, then RLPD-style online RL in which the frozen BC policy proposes an action beside the
RL actor's, and the critic picks:

    acting:     a = argmax over {pi(s), bc(s)} of Q(s, a)          (min over the ensemble)
    TD target:  r + discount * max over {pi(s'), bc(s')} of Q'(s', a')   (min over a random target subset)

so that the RL actor takes over state by state once its actions score higher. (The paper's aim is to
start online RL at imitation's level; here it still dips at the switch while the critic is young: README,
learner. With ``proposer: calql``, ``penalized_steps`` keeps Cal-QL's penalty on the critic for the first
online steps: no dip while it is on, but the RL actor does not overtake the proposer then, and the dip comes
once it is off.) The actor, critic and temperature train as in SAC; batches mix offline and online data as
RLPD's do. IBRL builds on TD3, so the target backs up no entropy (``backup_entropy`` must be false).

``proposer: calql`` pretrains with Cal-QL instead of BC (the advantage-weighted extraction of cql.py,
which beats BC offline on pick-and-place: README, learner), and online the frozen mode of that pretrained
actor proposes, while the RL actor and the critic start from the pretrained ones.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from robot_rl.algos.batch import Batch
from robot_rl.algos.bc import BC, BCConfig
from robot_rl.algos.cql import CQL, CQLConfig
from robot_rl.algos.plan import Phase, split_budget
from robot_rl.nets import ObservationEncoder, TanhGaussianActor

PROPOSERS = ("bc", "calql")


@dataclass
class IBRLConfig(CQLConfig):
    proposer: str = "bc"             # bc (the paper) | calql: what pretrains, and whose policy proposes online
    bc_lr: float = 1e-3              # the BC policy's Adam rate (bc.yaml's)
    backup_entropy: bool = False     # IBRL's target is a max over proposals with no entropy term

    def __post_init__(self):
        if self.backup_entropy:
            raise ValueError("algo=ibrl: the TD target takes the max over the BC and RL proposals and backs up no "
                             "entropy; set algo.agent.backup_entropy=false")
        if self.proposer not in PROPOSERS:
            raise ValueError(f"algo.agent.proposer={self.proposer!r}: expected one of {PROPOSERS}")


def plan(schedule) -> list[Phase]:
    """Pretraining for ``pretrain_updates`` on the offline data (BC, or Cal-QL with ``proposer: calql``); then
    ``critic_warmup_steps`` online steps that train the critic only (the actor stays as pretrained);
    ``penalized_steps`` of online RL whose critic keeps Cal-QL's penalty (``proposer: calql`` only); then online
    RL. The online phases mix in ``offline_ratio`` and share the ``online_steps`` budget."""
    online = dict(utd=schedule.utd, offline_ratio=schedule.offline_ratio)
    first = schedule.critic_warmup_steps + schedule.penalized_steps
    return [Phase("pretraining", updates=schedule.pretrain_updates, offline_ratio=1.0),
            Phase("critic_warmup", env_steps=schedule.critic_warmup_steps, **online),
            Phase("penalized", env_steps=schedule.penalized_steps, **online),
            Phase("online", env_steps=split_budget(schedule.online_steps, first, "online_steps",
                                                   "critic_warmup_steps + penalized_steps"), **online)]


class FrozenMode(torch.nn.Module):
    """A frozen copy of a pretrained actor's mode, with its encoder: the Cal-QL proposer."""

    def __init__(self, encoder: ObservationEncoder, actor: TanhGaussianActor):
        super().__init__()
        self.encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.actor = copy.deepcopy(actor).requires_grad_(False)

    def copy_from(self, encoder: ObservationEncoder, actor: TanhGaussianActor) -> None:
        self.encoder.load_state_dict(encoder.state_dict())
        self.actor.load_state_dict(actor.state_dict())

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.actor.mode(self.encoder(obs))


class IBRL(CQL):
    """SAC online; CQL in the ``proposer: calql`` pretraining and, for the critic, in the penalized phase."""
    config_class = IBRLConfig

    def __init__(self, shapes, action_dim, config: IBRLConfig):
        super().__init__(shapes, action_dim, config)
        self.conservative = False
        if config.proposer == "bc":
            self.reference = BC(shapes, action_dim, BCConfig(hidden=config.hidden, lr=config.bc_lr,
                                                             chunk=config.chunk, feature_dim=config.feature_dim,
                                                             augment_pad=config.augment_pad,
                                                             conv_strides=config.conv_strides,
                                                             normalize_obs=config.normalize_obs))
            self.optimizers["imitation"] = self.reference.optimizers["policy"]
        else:
            self.reference = FrozenMode(self.encoder, self.actor)
        # True in the pretraining phase; a buffer, so a policy loaded from a checkpoint taken then acts as the
        # pretrained policy does (BC's, or the Cal-QL actor's), not with the untrained critic's pick.
        self.register_buffer("pretraining", torch.tensor(False))
        self.actor_frozen = False  # True in the critic warmup: update() trains the critic only
        self.target_info: dict[str, torch.Tensor] = {}  # what td_target found, logged by update()

    @property
    def imitating(self) -> bool:
        """BC pretraining: act and learn as BC."""
        return bool(self.pretraining) and self.config.proposer == "bc"

    def begin_phase(self, phase: Phase) -> None:
        if phase.online and self.config.proposer == "calql" and self.pretraining:
            self.reference.copy_from(self.encoder, self.actor)  # once: a resumed online phase keeps its proposer
        penalized = phase.name == "penalized"
        if penalized and self.config.proposer != "calql":
            raise ValueError("algo.schedule.penalized_steps keeps Cal-QL's penalty online, so it needs "
                             "algo.agent.proposer=calql; set it to 0 or pretrain with Cal-QL")
        self.conservative = self.config.proposer == "calql" and (not phase.online or penalized)
        self.pretraining.fill_(not phase.online)
        self.actor_frozen = phase.name == "critic_warmup"

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        if self.pretraining and not self.imitating:  # Cal-QL pretraining: its actor acts
            return super().act(obs, deterministic)
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
        if self.pretraining:  # Cal-QL pretraining: its own target (the proposer is not fixed yet)
            return super().td_target(batch)
        with torch.no_grad():
            rl_action = self.actor.sample(self.encoder(batch.next_obs))[0]
            bc_action = self.reference(batch.next_obs)
            members = self.critic.random_members(self.config.target_subset)
            next_features = self.target_encoder(batch.next_obs)
            q_rl = self.target_critic(next_features, rl_action, members).min(0).values
            q_bc = self.target_critic(next_features, bc_action, members).min(0).values
            self.target_info = {"bc_chosen_in_target": (q_bc > q_rl).float().mean()}  # a tensor: no sync here
            return batch.reward + batch.discount * torch.maximum(q_rl, q_bc)

    @property
    def extracting(self) -> bool:
        """Cal-QL's extraction trains the actor in its pretraining only; online it is SAC's, penalty or not."""
        return bool(self.pretraining) and super().extracting

    def update(self, batches: list[Batch]) -> dict[str, float]:
        if self.imitating:
            return self.reference.update(batches)
        info = [self.critic_step(batch) for batch in batches][-1] if self.actor_frozen else super().update(batches)
        return info | {key: value.item() for key, value in self.target_info.items()}


Agent = IBRL
