"""The progress bar every long job shows: description, bar, count, rate, a status field, elapsed
time and ETA."""
from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f}/s", style="progress.data.speed")


def job_progress(console: Console, status_field: str = "status") -> Progress:
    """Tasks added to it need a ``status`` field (``add_task(..., status="")``)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TextColumn(f"{{task.fields[{status_field}]}}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console)
