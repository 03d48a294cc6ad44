"""The fine-tuning report (robot_rl.learner.report) from a run folder's evaluations, with a baseline beside."""
from __future__ import annotations

import csv

import pytest

from robot_rl.learner.metrics import EVAL_FIELDS
from robot_rl.learner.report import write_report


def run_folder(path, rows):
    path.mkdir()
    (path / "config.yaml").write_text("algo: {name: wsrl}\n")
    with open(path / "evaluations.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, EVAL_FIELDS)
        writer.writeheader()
        for phase, env_steps, updates, success in rows:
            writer.writerow({"phase": phase, "env_steps": env_steps, "updates": updates, "success_rate": success,
                             "return": 10 * success, "episode_length": 40})
    return path


def test_the_report_puts_a_baseline_beside_the_pretrained_and_fine_tuned_policies(tmp_path):
    run = run_folder(tmp_path / "run", [("offline", 0, 1500, 0.5), ("offline", 0, 3000, 0.85),
                                        ("warmup", 400, 3000, 0.8), ("online", 2000, 4600, 0.95)])
    bc = {"phase": "offline", "env_steps": 0, "updates": 3000, "success_rate": 1.0, "return": 33.9}
    report = write_report(run, "wsrl on widowx/reach", {"behaviour cloning (3000 updates)": bc}).read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and "policy" not in line]
    assert rows == ["| behaviour cloning (3000 updates) | 0 | 3000 | 100% | 33.90 |",
                    "| pretrained only | 0 | 3000 | 85% | 8.50 |",
                    "| fine-tuned | 2000 | 4600 | 95% | 9.50 |"]
    assert (run / "report" / "success.png").stat().st_size > 0
    assert (run / "report" / "config.yaml").exists()


def test_a_run_without_an_online_evaluation_has_no_report_yet(tmp_path):
    run = run_folder(tmp_path / "run", [("offline", 0, 3000, 0.85)])
    with pytest.raises(ValueError, match="no online evaluation"):
        write_report(run, "wsrl")
