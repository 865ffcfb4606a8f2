"""Preemption: SIGTERM (what Slurm, Kubernetes and `docker stop` send before SIGKILL) as an
exception, so a stage unwinds through its `finally` blocks (flush its journal, stop its engine and
its engine's processes) and exits with a message saying how to resume.

Only the first SIGTERM raises; later ones are ignored while the stage cleans up (the scheduler's
SIGKILL ends a cleanup that takes too long). `forward_to` passes SIGTERM on to a child process
(`distill run` runs each stage as one) and lets the child decide how to stop.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from collections.abc import Iterator

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


class Preempted(BaseException):
    """SIGTERM arrived. A BaseException, so `except Exception` handlers do not swallow it."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def preemptible() -> Iterator[None]:
    """Within the block, the first SIGTERM raises Preempted in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if fired:
            return
        fired.append(signum)
        raise Preempted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def call_forwarding(cmd: list[str], **kwargs) -> int:
    """`subprocess.call` that passes SIGTERM on to the child and waits for it to stop. Returns the
    child's exit code; raises Preempted once the child has exited if SIGTERM arrived."""
    proc = subprocess.Popen(cmd, **kwargs)
    got: list[int] = []

    def handler(signum, frame):
        if not got:
            got.append(signum)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, handler) if in_main else None
    try:
        code = proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        proc.wait()
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    if got:
        raise Preempted(got[0])
    return code
