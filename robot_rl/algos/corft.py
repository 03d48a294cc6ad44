"""CO-RFT (2025, "Chunked Offline Reinforcement Fine-Tuning" of a vision-language-action policy from a
few dozen demonstrations), in two stages on the same action chunks of h steps:

1. ``imitation``: full-parameter fine-tuning of the whole policy (tokenizers, backbone, head) with an L1
   (or MSE) loss on the demonstrated chunk.
2. ``offline_rl``: chunked TD learning. A LayerNorm critic ensemble Q(s, a_{t:t+h}) scores whole chunks:

       target = sum_{k<h} g^k r_{t+k} + g^h * mask * min over a random subset of Q_target(s_{t+h}, pi(s_{t+h}))

   (``Batch.reward`` / ``Batch.discount`` from the chunk sampler; ``valid`` drops chunks that run off a
   truncated end), plus a Cal-QL penalty on chunks (below), and the actor loss of TD3+BC
   (Fujimoto and Gu 2021) with the imitation loss in place of BC:

       actor loss = imitation(pi(s), a_data) - lambda * Q(s, pi(s)) / mean |Q(s, pi(s))|   (the mean detached)

The paper's code is not public; where it is silent this file chooses (all in ``configs/algo/corft.yaml``):
a deterministic chunk policy (so TD3-style target smoothing noise and TD3+BC's normalization apply
as published); a critic that reads the state and the policy's own patch tokens, detached, through a
small trained head (no second conv net on a CPU; Q never backpropagates into the backbone except
through the chunk in the actor loss); the conservative term is CQL(H) over
``n_actions`` uniform chunks and ``n_actions`` noisy policy chunks at s and at s' (each weighted by
its own sampling density), with the policy chunks' Q lower-bounded by the Monte-Carlo return-to-go
of s (Cal-QL, Nakamoto et al. 2023) -- the estimator of :mod:`robot_rl.algos.cql`, for a
deterministic chunk policy whose CQL actions are Gaussian perturbations of pi(s).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from robot_rl.algos.agent import LearningAgent
from robot_rl.algos.batch import Batch
from robot_rl.algos.ops import (
    conservative_gap,
    imitation_loss,
    masked_mean,
    optimizer_step,
    polyak_update,
    q_per_action,
)
from robot_rl.algos.plan import Phase
from robot_rl.algos.sac import ObservationShapes, config_from_dict
from robot_rl.nets import CriticEnsemble
from robot_rl.nets.text import resolve_text_encoder
from robot_rl.nets.vla import CriticObservationEncoder, VLAPolicy

STAGES = ("imitation", "offline_rl")


@dataclass
class CORFTConfig:
    chunk: int = 2                   # h, from the sweep in configs/algo/corft.yaml
    instruction: str = ""            # filled from the dataset (or the task) by configure()
    # the policy
    width: int = 64
    layers: int = 2
    heads: int = 4
    image_grid: int = 4              # patch tokens per camera: image_grid^2
    text_encoder: str = "auto"       # auto | minilm | learned
    backbone: str = "builtin"        # builtin | hf:<folder with a saved Hugging Face model>
    imitation_loss: str = "l1"       # l1 | mse
    policy_lr: float = 3e-4
    policy_augment_pad: int = 4      # DrQ shift on the policy's images while training
    # the critic
    hidden: tuple[int, ...] = (256, 256)
    ensemble_size: int = 2
    target_subset: int = 2
    layer_norm: bool = True
    critic_lr: float = 3e-4
    feature_dim: int = 50            # per-camera critic feature size
    tau: float = 0.005
    # stage 2
    rl_weight: float = 0.1           # alpha of TD3+BC's lambda = alpha / mean|Q| (2.5 there; see corft.yaml)
    target_noise: float = 0.2        # TD3 target policy smoothing (std), clipped at noise_clip
    noise_clip: float = 0.5
    cql_alpha: float = 5.0           # Cal-QL / WSRL's penalty weight
    n_actions: int = 10
    cql_temperature: float = 1.0
    calql: bool = True
    cql_noise: float = 0.3           # std of the Gaussian around pi(s) for the penalty's policy chunks
    explore_noise: float = 0.1       # act(deterministic=False): Gaussian noise on the chunk

    @classmethod
    def from_dict(cls, d) -> CORFTConfig:
        config = config_from_dict(cls, d)
        if config.imitation_loss not in ("l1", "mse"):
            raise ValueError(f"algo.agent.imitation_loss: expected l1 or mse, found {config.imitation_loss!r}")
        if config.chunk < 1:
            raise ValueError(f"algo.agent.chunk: expected h >= 1, found {config.chunk}")
        return config


def plan(schedule) -> list[Phase]:
    return [Phase("imitation", updates=schedule.imitation_updates, offline_ratio=1.0),
            Phase("offline_rl", updates=schedule.rl_updates, offline_ratio=1.0, utd=schedule.utd)]


def configure(cfg, env, instructions: list[str]) -> None:
    """Fill in what the run decides: the instruction (the dataset's episodes', else the task's) and the
    text encoder actually used (so a checkpoint names it)."""
    agent = cfg.algo.agent
    if not agent.instruction:
        distinct = sorted(set(instructions)) or [getattr(env.unwrapped, "instruction", "")]
        if len(distinct) > 1:
            raise ValueError(f"dataset={cfg.dataset}: its episodes carry {len(distinct)} instructions {distinct}; this "
                             "CO-RFT conditions a run on one: give algo.agent.instruction=... and one task's demos")
        agent.instruction = distinct[0]
    agent.text_encoder = resolve_text_encoder(agent.text_encoder)


class CORFT(LearningAgent):
    config_class = CORFTConfig
    reads_instructions = True
    configure = staticmethod(configure)

    def __init__(self, shapes: ObservationShapes, action_dim: int, config: CORFTConfig):
        super().__init__()
        if not 1 <= config.target_subset <= config.ensemble_size or config.ensemble_size < 2:
            raise ValueError(f"algo.agent.ensemble_size >= 2 and 1 <= target_subset <= ensemble_size, found "
                             f"ensemble_size={config.ensemble_size}, target_subset={config.target_subset}")
        self.config, self.shapes, self.action_dim = config, shapes, action_dim
        h = config.chunk
        self.policy = VLAPolicy(shapes.state, shapes.cameras, action_dim, h, config.instruction, width=config.width,
                                layers=config.layers, heads=config.heads, image_grid=config.image_grid,
                                text_encoder=config.text_encoder, backbone=config.backbone)
        self.encoder = CriticObservationEncoder(shapes.state, shapes.cameras, config.width, config.image_grid,
                                                config.feature_dim)
        self.critic = CriticEnsemble(self.encoder.out_dim, h * action_dim, config.ensemble_size, config.hidden,
                                     config.layer_norm)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.optimizers = {
            "policy": torch.optim.Adam(self.policy.parameters(), lr=config.policy_lr),
            "critic": torch.optim.Adam([*self.encoder.parameters(), *self.critic.parameters()], lr=config.critic_lr),
        }
        self.phase = "imitation"  # the running phase's name, set by begin_phase

    def begin_phase(self, phase: Phase) -> None:
        self.phase = phase.name

    # --- acting -------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """Action chunks [N, h, A] for a batch of observations."""
        device = self.policy.position.device
        chunk = self.policy({k: torch.as_tensor(np.asarray(obs[k]), device=device) for k in self.encoder_keys})
        if not deterministic:
            chunk = (chunk + self.config.explore_noise * torch.randn_like(chunk)).clamp(-1.0, 1.0)
        return chunk.cpu().numpy()

    def flat_policy(self, obs: dict[str, torch.Tensor], augment: bool = False) -> torch.Tensor:
        return self.policy(obs, self.config.policy_augment_pad if augment else 0).flatten(1)

    # --- learning -----------------------------------------------------------------------------
    def update(self, batches: list[Batch]) -> dict[str, float]:
        if self.phase not in STAGES:
            raise ValueError(f"CO-RFT has no phase {self.phase!r}: expected one of {STAGES}")
        for batch in batches:
            self.policy.observe(batch.obs)
        if self.phase == "imitation":
            info = {}
            for batch in batches:
                info = self.imitation_step(batch)
            return info
        for batch in batches:
            info = self.critic_step(batch)
        info.update(self.actor_step(batches[-1]))
        return info

    def imitation_loss(self, predicted: torch.Tensor, batch: Batch) -> torch.Tensor:
        """L1 or MSE over the chunk's real actions: those padded past the episode's end do not count."""
        return imitation_loss(predicted, batch, self.action_dim, self.config.imitation_loss)

    def imitation_step(self, batch: Batch) -> dict[str, float]:
        loss = self.imitation_loss(self.flat_policy(batch.obs, augment=True), batch)
        optimizer_step(self.optimizers["policy"], loss)
        return {"imitation_loss": loss.item()}

    def critic_step(self, batch: Batch) -> dict[str, float]:
        with torch.no_grad():
            tokens, next_tokens = self.policy.image_tokens(batch.obs), self.policy.image_tokens(batch.next_obs)
            chunk = self.policy(batch.obs, image_tokens=tokens).flatten(1)
            next_chunk = self.policy(batch.next_obs, image_tokens=next_tokens).flatten(1)
            target = self.td_target(batch, next_tokens, next_chunk)
        features = self.encoder(self.policy.state_input(batch.obs), tokens)
        q = self.critic(features, batch.action)
        td_loss = masked_mean((q - target) ** 2, batch.valid)
        gap = self.conservative_gap(batch, features, q, chunk, next_chunk)
        loss = td_loss + self.config.cql_alpha * gap
        optimizer_step(self.optimizers["critic"], loss)
        polyak_update(((self.critic, self.target_critic), (self.encoder, self.target_encoder)), self.config.tau)
        return {"critic_loss": loss.item(), "td_loss": td_loss.item(), "cql_gap": gap.item(),
                "q": q.mean().item(), "target_q": target.mean().item()}

    def td_target(self, batch: Batch, next_tokens: list[torch.Tensor], next_chunk: torch.Tensor) -> torch.Tensor:
        """Chunk reward sum + g^h * mask * min over a random target subset of Q'(s_{t+h}, pi(s_{t+h}) + noise)."""
        cfg = self.config
        noise = (cfg.target_noise * torch.randn_like(next_chunk)).clamp(-cfg.noise_clip, cfg.noise_clip)
        members = self.critic.random_members(cfg.target_subset)
        next_features = self.target_encoder(self.policy.state_input(batch.next_obs), next_tokens)
        next_q = self.target_critic(next_features, (next_chunk + noise).clamp(-1.0, 1.0), members).min(0).values
        return batch.reward + batch.discount * next_q

    def conservative_gap(self, batch: Batch, features: torch.Tensor, q_data: torch.Tensor, chunk: torch.Tensor,
                         next_chunk: torch.Tensor) -> torch.Tensor:
        """Mean over members and valid rows of logsumexp over sampled chunks of Q(s, .) - Q(s, a_data)."""
        cfg, n, b = self.config, self.config.n_actions, len(batch)
        flat = self.critic_action_dim
        random_chunks = torch.rand(n, b, flat, device=features.device) * 2.0 - 1.0
        chunks_s, log_density_s = self._noisy(chunk, n)
        chunks_next, log_density_next = self._noisy(next_chunk, n)
        q_random = q_per_action(self.critic, features, random_chunks) + flat * math.log(2.0)  # - log(0.5^flat)
        q_s, q_next = q_per_action(self.critic, features, chunks_s), q_per_action(self.critic, features, chunks_next)
        if cfg.calql:
            q_s, q_next = q_s.clamp(min=batch.mc_return), q_next.clamp(min=batch.mc_return)
        scored = torch.cat([q_random, q_s - log_density_s, q_next - log_density_next], dim=1)
        return conservative_gap(scored, q_data, batch.valid, cfg.cql_temperature)

    @property
    def critic_action_dim(self) -> int:
        return self.config.chunk * self.action_dim

    def _noisy(self, chunk: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n Gaussian perturbations of each chunk [B, F] -> ([n, B, F] clipped to [-1, 1], log density [n, B])."""
        sigma = self.config.cql_noise
        noise = sigma * torch.randn(n, *chunk.shape, device=chunk.device)
        log_density = (-0.5 * (noise / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
        return (chunk + noise).clamp(-1.0, 1.0), log_density

    def actor_step(self, batch: Batch) -> dict[str, float]:
        tokens = self.policy.image_tokens(batch.obs)
        chunk = self.policy(batch.obs, image_tokens=tokens).flatten(1)
        with torch.no_grad():
            features = self.encoder(self.policy.state_input(batch.obs), tokens)
        self.critic.requires_grad_(False)
        q = self.critic(features, chunk).mean(0)
        self.critic.requires_grad_(True)
        imitation = self.imitation_loss(chunk, batch)
        lam = self.config.rl_weight / q.abs().mean().detach().clamp(min=1e-6)
        loss = imitation - lam * q.mean()
        optimizer_step(self.optimizers["policy"], loss)
        return {"actor_loss": loss.item(), "imitation_loss": imitation.item(), "policy_q": q.mean().item()}


Agent = CORFT
