"""WSRL (Zhou et al. 2024, "Efficient Online Reinforcement Learning Fine-Tuning Need Not Retain
Offline Data"): Cal-QL pretraining, then online

1. a warmup of ``warmup_steps`` environment steps acting with the pretrained policy, no updates,
   which seeds the online replay with on-policy data and avoids the collapse of Q at the switch;
2. SAC fine-tuning (no conservative penalty) on online data only, at UTD 4.

The offline dataset is never sampled after pretraining."""
from __future__ import annotations

from robot_rl.algos.cql import CQL
from robot_rl.algos.plan import Phase, split_budget

Agent = CQL


def plan(schedule) -> list[Phase]:
    return [Phase("offline", updates=schedule.offline_updates, offline_ratio=1.0, utd=schedule.offline_utd),
            Phase("warmup", env_steps=schedule.warmup_steps, learn=False),
            Phase("online", env_steps=split_budget(schedule.online_steps, schedule.warmup_steps, "online_steps",
                                                   "warmup_steps"), utd=schedule.utd, conservative=False)]
