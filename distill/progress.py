"""Progress bars and log lines for long stages (rich), written to stderr."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def stage_progress() -> Iterator[tuple[Progress, Callable[[str], None]]]:
    """A progress bar (done/total, a `tok_s` field, elapsed, ETA) and a log function above it."""
    console = Console(stderr=True, force_terminal=None if sys.stderr.isatty() else False)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tok_s]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
    progress_fields = progress.add_task  # keep the default field present for every task

    def add_task(description: str, **kwargs):
        kwargs.setdefault("tok_s", "")
        return progress_fields(description, **kwargs)

    progress.add_task = add_task  # type: ignore[method-assign]

    def log(message: str) -> None:
        console.print(message, highlight=False, soft_wrap=True)

    with progress:
        yield progress, log
