"""Progress for long stages, on stderr: a rich progress bar on a terminal; in a batch log (Slurm,
Kubernetes, CI) a plain line every `interval` seconds instead, so logs show progress too."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class LogProgress:
    """The subset of rich's Progress the stages use, printing a line every `interval` seconds."""

    def __init__(self, log: Callable[[str], None], interval: float = 30.0):
        self.log, self.interval = log, interval
        self.tasks: dict[int, dict[str, Any]] = {}

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self.tasks)
        now = time.monotonic()
        self.tasks[task_id] = {
            "description": description,
            "total": total,
            "completed": 0.0,
            "start": now,
            "last": now,
            "fields": fields,
        }
        return task_id

    def update(self, task_id: int, advance: float = 0.0, **fields: Any) -> None:
        task = self.tasks[task_id]
        task["completed"] += advance
        task["fields"].update(fields)
        now = time.monotonic()
        done = task["total"] is not None and task["completed"] >= task["total"]
        if now - task["last"] >= self.interval or done:
            task["last"] = now
            self.log(self._line(task, now))

    @staticmethod
    def _line(task: dict[str, Any], now: float) -> str:
        done, total, elapsed = task["completed"], task["total"], now - task["start"]
        parts = [f"{task['description']}: {done:.0f}" + (f"/{total:.0f}" if total else "")]
        parts += [str(v) for v in task["fields"].values() if v]
        if total and done:
            parts.append(f"elapsed {elapsed:.0f} s, eta {elapsed * (total - done) / done:.0f} s")
        return ", ".join(parts)


@contextlib.contextmanager
def stage_progress(interval: float = 30.0) -> Iterator[tuple[Any, Callable[[str], None]]]:
    """(progress, log): a bar with done/total, a `tok_s` field, elapsed and ETA, and a log function."""
    console = Console(stderr=True, force_terminal=None if sys.stderr.isatty() else False)

    def log(message: str) -> None:
        console.print(message, highlight=False, soft_wrap=True)

    if not console.is_terminal:
        yield LogProgress(log, interval), log
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tok_s]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )
    add_task = progress.add_task

    def add_task_with_fields(description: str, **kwargs: Any) -> Any:
        kwargs.setdefault("tok_s", "")
        return add_task(description, **kwargs)

    progress.add_task = add_task_with_fields  # type: ignore[method-assign]
    with progress:
        yield progress, log
