"""A training plan: the phases an algorithm runs, in order. Offline phases count gradient updates;
online phases count environment steps, with ``utd`` critic updates per step."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    updates: int = 0             # offline phase: UTD cycles on the offline dataset
    env_steps: int = 0           # online phase: environment steps
    utd: int = 1                 # critic updates per UTD cycle (one actor update per cycle)
    offline_ratio: float = 0.0   # share of every batch drawn from the offline dataset
    learn: bool = True           # False: act and record only (WSRL's warmup)
    random_actions: bool = False  # act uniformly at random (SAC's initial exploration)
    conservative: bool = True    # CQL agents: keep the penalty (WSRL drops it online)

    @property
    def length(self) -> int:
        """Updates (offline) or environment steps (online); 0: the phase is skipped."""
        return self.updates or self.env_steps

    @property
    def online(self) -> bool:
        return self.env_steps > 0

    def __post_init__(self):
        if self.updates < 0 or self.env_steps < 0 or (self.updates and self.env_steps):
            raise ValueError(f"phase {self.name!r}: give updates (offline) or env_steps (online), both >= 0, "
                             f"found updates={self.updates}, env_steps={self.env_steps}")
        if not 0.0 <= self.offline_ratio <= 1.0:
            raise ValueError(f"phase {self.name!r}: offline_ratio must be in [0, 1], found {self.offline_ratio}")
        if self.updates and self.offline_ratio != 1.0:
            raise ValueError(f"phase {self.name!r}: an offline phase samples only offline data (offline_ratio=1)")


def split_budget(total: int, first: int, total_key: str, first_key: str) -> int:
    """``total - first``: what is left of an online budget after its first part (random steps, warmup)."""
    if not 0 <= first <= total:
        raise ValueError(f"algo.schedule.{first_key}={first} must be between 0 and "
                         f"algo.schedule.{total_key}={total} (it is part of that budget)")
    return total - first
