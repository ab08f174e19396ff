"""Progress display: one rich `Progress` per command, shared by everything a long job does."""
from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True, soft_wrap=True)  # log lines stay whole in pipes


def counted(n: int, noun: str) -> str:
    """'1 epoch', '3 epochs': for the lines a job prints."""
    return f"{n} {noun}{'s' * (n != 1)}"


def new_progress() -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), console=console,
                    disable=not console.is_terminal)  # no bar redraws in logs and pipes


@contextmanager
def task(progress: Progress | None, description: str, total: int):
    """Yields `advance(n=1, status=None)` for a task on `progress` (or on a display of its own);
    `status` is shown after the description, e.g. the current epoch."""
    if progress is None:
        with new_progress() as own:
            with task(own, description, total) as advance:
                yield advance
        return
    task_id = progress.add_task(description, total=total)

    def advance(n: int = 1, status: str | None = None) -> None:
        if status is None:
            progress.advance(task_id, n)
        else:
            progress.update(task_id, advance=n, description=f"{description} · {status}")

    try:
        yield advance
    finally:
        progress.remove_task(task_id)
