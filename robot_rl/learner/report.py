"""The report of a fine-tuning run, from what the learner left in its run folder:

    report/success.png   evaluation success rate against online env steps: the fine-tuned policy, the
                         pretrained-only policy (the last offline evaluation: its weights no longer change)
                         and any baselines (behaviour cloning on the same demonstrations, say) as lines
    report/report.md     the final numbers of all of them, and links to the rest
    report/rollout.mp4   the fine-tuned policy's last evaluation episode, from the twin camera
    report/config.yaml   the run's resolved config
"""
from __future__ import annotations

import itertools
import shutil
from collections.abc import Mapping
from pathlib import Path

from robot_rl.learner.metrics import read_evaluations

OFFLINE = "offline"  # the phase name of offline pretraining in every algorithm's plan


def online_rows(evaluations: list[dict]) -> list[dict]:
    """The evaluations of the online phases (the fine-tuned policy)."""
    return [row for row in evaluations if row["phase"] not in (OFFLINE, "start")]


def final_rows(evaluations: list[dict]) -> tuple[dict | None, dict | None]:
    """(pretrained-only, fine-tuned): the last offline evaluation and the last one after it."""
    offline, online = [row for row in evaluations if row["phase"] == OFFLINE], online_rows(evaluations)
    return (offline[-1] if offline else None), (online[-1] if online else None)


def write_report(run_dir: str | Path, title: str, baselines: Mapping[str, dict] | None = None) -> Path:
    """Write ``run_dir/report/`` (see the module docstring); returns the path of report.md. ``baselines``:
    name -> the final evaluation row of a policy trained otherwise (no online phase), shown beside."""
    run_dir = Path(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    evaluations = read_evaluations(run_dir)
    pretrained, finetuned = final_rows(evaluations)
    if finetuned is None:
        raise ValueError(f"{run_dir}: no online evaluation in evaluations.csv yet; the learner has not fine-tuned")
    baselines = dict(baselines or {})
    plot_success(evaluations, pretrained, out / "success.png", title, baselines)
    shutil.copyfile(run_dir / "config.yaml", out / "config.yaml")
    videos = sorted((run_dir / "videos").glob("eval_*.mp4"))
    if videos:
        shutil.copyfile(videos[-1], out / "rollout.mp4")
    lines = [f"# {title}", "", "| policy | online env steps | critic updates | success | return |", "|---|---|---|---|---|"]
    for name, row in (*baselines.items(), ("pretrained only", pretrained), ("fine-tuned", finetuned)):
        if row is not None:
            lines.append(f"| {name} | {row['env_steps']:.0f} | {row['updates']:.0f} | {row['success_rate']:.0%} "
                         f"| {row['return']:.2f} |")
    lines += ["", "![success rate against online env steps](success.png)", "",
              f"- rollout of the fine-tuned policy: {'[rollout.mp4](rollout.mp4)' if videos else 'none (eval.video=false)'}",
              "- resolved config: [config.yaml](config.yaml)",
              f"- every evaluation: {run_dir / 'evaluations.csv'}; TensorBoard: `tensorboard --logdir {run_dir / 'tb'}`"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"


def plot_success(evaluations: list[dict], pretrained: dict | None, path: Path, title: str,
                 baselines: Mapping[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    online = online_rows(evaluations)
    steps = [row["env_steps"] for row in online]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(steps, [100 * row["success_rate"] for row in online], marker="o", label="fine-tuned (online)")
    if pretrained is not None:
        ax.plot([0, max(steps)], [100 * pretrained["success_rate"]] * 2, linestyle="--", color="gray",
                label="pretrained only (offline)")
    for (name, row), style in zip(baselines.items(), itertools.cycle((":", "-.", (0, (5, 1))))):
        ax.plot([0, max(steps)], [100 * row["success_rate"]] * 2, linestyle=style, color="black", label=name)
    ax.set_xlabel("online env steps")
    ax.set_ylabel("evaluation success (%)")
    ax.set_ylim(-5, 105)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
