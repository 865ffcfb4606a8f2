"""Progress for long stages, one style for all of them, on the terminal (`distill.logs.terminal()`,
the real stderr even while a stage's third-party output goes to its log file).

On a terminal: rich rows, one per phase or task: a spinner and the elapsed time for a phase
(starting the engine, loading a model, scoring), and for a task done/total, its own fields
(tok/s, loss), elapsed time and ETA. In a batch log (stdout/stderr not a TTY: Slurm, Kubernetes,
CI, nohup) no carriage-return bars: a plain line when a phase starts and ends, and for a task a
line every `interval` seconds (DISTILL_PROGRESS_INTERVAL, default 20) and when it ends.

A stage opens one with `stage_progress()`; code deeper down (an engine's start-up, the trainer's
callback) reaches it through `current()`, `phase()` and `say()`, which do nothing special when no
stage progress is open (library use).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from distill import logs

DEFAULT_INTERVAL = 20.0
_current: Any = None  # the progress of the stage running in this process, if any


def current() -> Any:
    return _current


def say(message: str) -> None:
    """A line for the user: above the bars while a stage progress is open, else on the terminal."""
    if _current is not None:
        _current.say(message)
    else:
        logs.echo(message)


@contextlib.contextmanager
def phase(description: str) -> Iterator[None]:
    """A step without a count (starting an engine, loading a model), timed on its own row."""
    if _current is None:
        yield
        return
    with _current.phase(description):
        yield


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _count(value: float) -> str:
    return f"{value:.0f}"


def _fields(fields: dict[str, Any]) -> list[str]:
    return [str(v) for k, v in fields.items() if v and not k.startswith("_")]


class LogProgress:
    """The progress API the stages use (rich's `add_task`/`start_task`/`update`, plus `phase` and
    `say`), as plain lines: at the start and end of a phase, every `interval` seconds while a task
    runs (from `update`, or from `tick`, which a background thread calls while nothing updates),
    and when a task ends. `clock` is injectable for tests."""

    def __init__(self, log: Callable[[str], None], interval: float = DEFAULT_INTERVAL, clock=time.monotonic):
        self.log, self.interval, self.clock = log, interval, clock
        self.tasks: dict[int, dict[str, Any]] = {}
        self.lock = threading.RLock()

    # --- the rich-compatible part ----------------------------------------------------------------

    def add_task(
        self,
        description: str,
        total: float | None = None,
        start: bool = True,
        completed: float = 0,
        **fields: Any,
    ) -> int:
        with self.lock:
            task_id = len(self.tasks)
            self.tasks[task_id] = {
                "description": description,
                "total": total,
                "completed": float(completed),
                "start": None,
                "base": float(completed),
                "last": self.clock(),
                "fields": fields,
                "finished": False,
                "phase": False,
                "printed": float(completed),
            }
            if start:
                self.start_task(task_id)
            return task_id

    def start_task(self, task_id: int) -> None:
        with self.lock:
            task = self.tasks[task_id]
            if task["start"] is None:
                task["start"] = task["last"] = self.clock()
                task["base"] = task["completed"]

    def update(
        self,
        task_id: int,
        advance: float = 0.0,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        with self.lock:
            task = self.tasks[task_id]
            if task["start"] is None:
                self.start_task(task_id)
            if total is not None:
                task["total"] = total
            if description is not None:
                task["description"] = description
            task["completed"] = float(completed) if completed is not None else task["completed"] + advance
            task["fields"].update(fields)
            now = self.clock()
            if task["finished"]:
                return
            if task["total"] is not None and task["completed"] >= task["total"]:
                task["finished"] = True
                self._print(task, now)
            elif now - task["last"] >= self.interval:
                self._print(task, now)

    # --- phases, lines, the heartbeat ------------------------------------------------------------

    @contextlib.contextmanager
    def phase(self, description: str) -> Iterator[None]:
        with self.lock:
            task_id = self.add_task(description)
            task = self.tasks[task_id]
            task["phase"] = True
            self.log(f"{description} ...")
        try:
            yield
        except BaseException:
            with self.lock:
                task["finished"] = True
                self.log(f"{description}: failed after {duration(self.clock() - task['start'])}")
            raise
        with self.lock:
            task["finished"] = True
            self.log(f"{description}: done in {duration(self.clock() - task['start'])}")

    def say(self, message: str) -> None:
        with self.lock:
            self.log(message)

    def tick(self) -> None:
        """A line for every running task or phase that has printed nothing for `interval` seconds
        (a long engine start, a generation whose first prompts take minutes)."""
        with self.lock:
            now = self.clock()
            for task in self.tasks.values():
                if task["start"] is not None and not task["finished"] and now - task["last"] >= self.interval:
                    self._print(task, now)

    def close(self) -> None:
        """The last state of every task that stopped before its total (a failure, an interrupt)."""
        with self.lock:
            now = self.clock()
            for task in self.tasks.values():
                if task["start"] is not None and not task["finished"] and not task["phase"]:
                    task["finished"] = True  # no ETA: it stopped
                    if task["completed"] != task["printed"]:
                        self._print(task, now)

    def _print(self, task: dict[str, Any], now: float) -> None:
        task["last"] = now
        task["printed"] = task["completed"]
        self.log(self._line(task, now))

    @staticmethod
    def _line(task: dict[str, Any], now: float) -> str:
        elapsed = now - (task["start"] if task["start"] is not None else now)
        if task["phase"]:
            return f"{task['description']} ... {duration(elapsed)}"
        done, total = task["completed"], task["total"]
        parts = [f"{task['description']}: {_count(done)}" + (f"/{_count(total)}" if total else "")]
        parts += _fields(task["fields"])
        parts.append(f"elapsed {duration(elapsed)}")
        rate_done = done - task["base"]
        if total and not task["finished"] and rate_done > 0:
            parts.append(f"eta {duration(elapsed * (total - done) / rate_done)}")
        return ", ".join(parts)


def _no_wrap() -> Column:
    return Column(no_wrap=True)


class _Counts(ProgressColumn):
    def __init__(self) -> None:
        super().__init__(table_column=_no_wrap())

    def render(self, task: Any) -> Text:
        if task.total is None or task.fields.get("_phase"):
            return Text("")
        return Text(f"{_count(task.completed)}/{_count(task.total)}", style="progress.download")


class _Fields(ProgressColumn):
    def __init__(self) -> None:
        super().__init__(table_column=_no_wrap())

    def render(self, task: Any) -> Text:
        return Text("  ".join(_fields(task.fields)))


class _Eta(ProgressColumn):
    max_refresh = 0.5

    def __init__(self) -> None:
        super().__init__(table_column=_no_wrap())

    def render(self, task: Any) -> Text:
        if task.total is None or task.finished or task.fields.get("_phase"):
            return Text("")
        remaining = task.time_remaining
        return Text(
            "eta " + (duration(remaining) if remaining is not None else "-"), style="progress.remaining"
        )


class RichProgress:
    """The same API on rich's live display: one row per phase and task, kept when it ends."""

    def __init__(self, console: Console):
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=16),
            _Counts(),
            _Fields(),
            TimeElapsedColumn(table_column=_no_wrap()),
            _Eta(),
            console=console,
        )

    def add_task(
        self,
        description: str,
        total: float | None = None,
        start: bool = True,
        completed: float = 0,
        **fields: Any,
    ) -> Any:
        return self.progress.add_task(description, total=total, start=start, completed=completed, **fields)

    def start_task(self, task_id: Any) -> None:
        self.progress.start_task(task_id)

    def update(self, task_id: Any, advance: float | None = None, **kwargs: Any) -> None:
        task = self.progress._tasks.get(task_id)
        if task is not None and task.start_time is None:
            self.progress.start_task(task_id)
        self.progress.update(task_id, advance=advance, **kwargs)

    @contextlib.contextmanager
    def phase(self, description: str) -> Iterator[None]:
        task_id = self.progress.add_task(description, total=None, _phase=True)
        try:
            yield
        except BaseException:
            self.progress.update(task_id, description=f"{description} [red](failed)[/]")
            self.progress.stop_task(task_id)
            raise
        self.progress.update(task_id, total=1, completed=1)

    def say(self, message: str) -> None:
        self.progress.console.print(message, highlight=False, soft_wrap=True, markup=False)

    def close(self) -> None:
        for task in self.progress.tasks:
            if not task.finished:
                self.progress.stop_task(task.id)


def _beat(progress: LogProgress, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        progress.tick()


def _interval() -> float:
    try:
        return float(os.environ.get("DISTILL_PROGRESS_INTERVAL", DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL


@contextlib.contextmanager
def stage_progress(interval: float | None = None) -> Iterator[tuple[Any, Callable[[str], None]]]:
    """(progress, log) for a stage: bars on a terminal, plain lines in a batch log; `log` prints a
    line for the user (above the bars)."""
    global _current
    stream = logs.terminal()
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    console = Console(file=stream, force_terminal=None if is_tty else False)
    progress: Any
    if console.is_terminal:
        progress = RichProgress(console)
    else:
        progress = LogProgress(
            lambda m: console.print(m, highlight=False, soft_wrap=True, markup=False),
            interval if interval is not None else _interval(),
        )
    previous, _current = _current, progress
    stop = threading.Event()
    heartbeat = None
    try:
        if isinstance(progress, RichProgress):
            with progress.progress:
                try:
                    yield progress, progress.say
                finally:
                    progress.close()
        else:
            heartbeat = threading.Thread(
                target=_beat, args=(progress, stop), name="distill-progress", daemon=True
            )
            heartbeat.start()
            try:
                yield progress, progress.say
            finally:
                progress.close()
    finally:
        stop.set()
        if heartbeat is not None:
            heartbeat.join(timeout=2)
        _current = previous
