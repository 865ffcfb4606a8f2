"""Where a stage's output goes: the user's terminal gets distill's own lines (progress, what each
stage did, errors); everything else goes to a log file.

vLLM, transformers, datasets, torch, math-verify and the rest write to file descriptors 1 and 2,
and vLLM's engine core and workers are spawned processes that write to the descriptors they
inherit and configure their own logging. So the redirection is made at the descriptor level: for
the lifetime of a stage, fds 1 and 2 point at the log file (children inherit that), and distill
writes to a duplicate of the real stderr (`terminal()`).

    OUT/logs/<stage>.log          a stage command's log (appended to by every run into OUT)
    RUN/logs/<stage>.log          under `distill run` (set by the run through DISTILL_LOG_FILE)

`--verbose` (on `distill` or on a command) or `DISTILL_LOG=debug` leaves the descriptors alone:
everything shows on the terminal, as without distill, and no log file is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

ENV_LEVEL = "DISTILL_LOG"  # "debug" (or "verbose"): third-party output on the terminal
ENV_FILE = "DISTILL_LOG_FILE"  # this stage's log file (set by `distill run` for its stages)
ENV_IN_RUN = "DISTILL_RUN_STAGE"  # set by `distill run`: a stage prints no bare result path
VERBOSE_VALUES = {"debug", "verbose", "1", "true", "yes"}
THIRD_PARTY = (
    "vllm",
    "transformers",
    "datasets",
    "torch",
    "accelerate",
    "trl",
    "peft",
    "math_verify",
    "latex2sympy2_extended",
    "huggingface_hub",
    "urllib3",
    "filelock",
)
# Read by the libraries (and the children they spawn) when they are first imported.
# Not TQDM_DISABLE: a disabled bar reports 0 s elapsed, and vLLM's `LLM.chat`/`generate` divide by
# it (ZeroDivisionError in any vLLM script started from a stage's environment); tqdm's bars go to
# the log file with the rest.
QUIET_ENV = {
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",  # its fork warning
}

_terminal: TextIO | None = None  # the real stderr while fds 1 and 2 point at the log file
_log_file: Path | None = None  # the log of this process's stage (kept after it ends, for errors)
_header_size = 0


def verbose() -> bool:
    return os.environ.get(ENV_LEVEL, "").strip().lower() in VERBOSE_VALUES


def set_verbose(on: bool = True) -> None:
    """`--verbose`: this process and every process it starts (the stages of `distill run`)."""
    if on:
        os.environ[ENV_LEVEL] = "debug"


def terminal() -> TextIO:
    """Where distill's own lines go: the real stderr, also while a stage's output is redirected."""
    return _terminal or sys.stderr


def echo(message: str) -> None:
    print(message, file=terminal(), flush=True)


def log_file() -> Path | None:
    """The log file of the stage this process ran (or runs), if it holds anything."""
    return _log_file


def log_note() -> str:
    """'   log: PATH' for a command's closing line, when its stage left a log file."""
    path = _log_file
    return f"   log: {path}" if path is not None and path.is_file() else ""


def result(text: str) -> None:
    """A command's machine-readable result (an output path) on stdout, for scripts; `distill run`
    reads its stages' outputs itself and prints its own summary."""
    if not os.environ.get(ENV_IN_RUN):
        print(text, flush=True)


def quiet_env() -> None:
    """No progress bars from the libraries, in this process and its children (set before they are
    imported; an explicit value in the environment wins)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def stage_log_path(stage: str, output: str | Path | None) -> Path | None:
    if os.environ.get(ENV_FILE):
        return Path(os.environ[ENV_FILE])
    if output is None:
        return None
    return Path(output) / "logs" / f"{stage}.log"


@contextlib.contextmanager
def stage_output(stage: str, output: str | Path | None) -> Iterator[Path | None]:
    """Run a stage with third-party output in its log file (see the module doc); yields the log
    path (None when verbose). Nested use is a no-op. A stage that fails restores the terminal
    before the error propagates, so the error itself is always shown (`report_failure`)."""
    global _terminal, _log_file, _header_size
    quiet_env()
    if verbose() or _terminal is not None:
        yield None
        return
    path = stage_log_path(stage, output)
    opened = _open_log(path, stage) if path is not None else None
    if opened is None:  # no folder to write to (a file in the way, read-only): a temporary log
        path = Path(tempfile.gettempdir()) / "distill-logs" / f"{stage}-{os.getpid()}.log"
        opened = _open_log(path, stage)
    if opened is None:
        yield None
        return
    fd, created = opened
    _header_size = os.fstat(fd).st_size
    _flush_std()
    try:
        saved = os.dup(1), os.dup(2)
    except OSError:  # a closed stdout/stderr: nothing to protect
        os.close(fd)
        yield None
        return
    _terminal = open(os.dup(saved[1]), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    _log_file = path
    try:
        yield path
    finally:
        _flush_std()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        with contextlib.suppress(OSError):
            _terminal.close()
        _terminal = None
        if _log_is_empty(path):  # nothing but our header (e.g. a bad input caught at once)
            _remove(path, created)
            _log_file = None
        _quiet_teardown()


def _open_log(path: Path, stage: str) -> tuple[int, list[Path]] | None:
    created = []  # the folders this call makes, outermost first (removed again if nothing is logged)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        created.insert(0, folder)
        folder = folder.parent
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return None
    argv = " ".join(["distill", *sys.argv[1:]])
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    os.write(fd, f"===== {stamp} {stage} (pid {os.getpid()}): {argv}\n".encode())
    return fd, created


def _log_is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == _header_size and _only_headers(path)
    except OSError:
        return False


def _only_headers(path: Path) -> bool:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return all(line.startswith("===== ") for line in lines)


def _remove(path: Path, created: list[Path]) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
    for folder in reversed(created):  # innermost first; only the ones this call made, if empty
        with contextlib.suppress(OSError):
            folder.rmdir()


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _quiet_teardown() -> None:
    """After a quiet stage, the terminal is the user's again: what the libraries still say while
    the interpreter exits (shutdown notices, leaked-resource warnings) is not theirs to read.
    Errors still show."""
    warnings.simplefilter("ignore")
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.ERROR)


def tail(path: Path, lines: int = 20) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


def report_failure(show_tail: bool) -> None:
    """After a failed stage's error: where its full log is (and, for an unexpected failure, its
    last lines, where the cause usually is: a vLLM engine process's own traceback, say)."""
    path = _log_file
    if path is None or not path.is_file():
        return
    out = sys.stderr
    if show_tail:
        last = tail(path)
        if last:
            print(f"last lines of the log ({path}):", file=out)
            for line in last:
                print(f"  {line}", file=out)
    print(f"full log: {path}", file=out, flush=True)
