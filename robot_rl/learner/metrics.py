"""What a run records besides checkpoints: TensorBoard scalars (``tb/``) and every evaluation as a
row of ``evaluations.csv``, which reports and plots read back."""
from __future__ import annotations

import csv
from pathlib import Path

EVAL_FIELDS = ("phase", "env_steps", "updates", "success_rate", "return", "episode_length")


class Metrics:
    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run_dir / "tb"))
        self.eval_path = run_dir / "evaluations.csv"

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.tb.add_scalar(f"{prefix}/{key}", value, step)

    def evaluation(self, row: dict) -> None:
        new = not self.eval_path.exists()
        with open(self.eval_path, "a", newline="") as f:
            writer = csv.DictWriter(f, EVAL_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({k: row[k] for k in EVAL_FIELDS})
        online = row["phase"] != "offline"
        prefix, step = ("evaluation", row["env_steps"]) if online else ("pretraining/evaluation", row["updates"])
        self.scalars(prefix, {k: row[k] for k in ("success_rate", "return", "episode_length")}, step)
        self.tb.flush()

    def close(self) -> None:
        self.tb.close()


def read_evaluations(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "evaluations.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: (v if k == "phase" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]
