"""RLPD (Ball et al. 2023, "Efficient Online RL with Offline Data"): SAC with no pretraining, where
every batch is half offline dataset, half online replay ("symmetric sampling"), with a LayerNorm
critic ensemble (E = 10, min over 2) and a high update-to-data ratio (UTD 20). The agent is plain
:class:`~robot_rl.algos.sac.SAC`; the paper's settings are in ``configs/algo/rlpd.yaml``."""
from __future__ import annotations

from robot_rl.algos.plan import Phase
from robot_rl.algos.sac import SAC

Agent = SAC


def plan(schedule) -> list[Phase]:
    return [Phase("online", env_steps=schedule.online_steps, utd=schedule.utd, offline_ratio=schedule.offline_ratio)]
