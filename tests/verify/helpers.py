"""Helpers of the sandbox tests (test_sandbox.py, test_code.py): name a sandboxed program's
processes after a marker, and find host processes that carry it."""

from __future__ import annotations

import os
import secrets


def new_marker() -> str:
    return "dst" + secrets.token_hex(6)  # 15 characters: fits a process's comm


def tag(marker: str) -> str:
    """A first line that names the program's process (and its forks) after `marker` (PR_SET_NAME)."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)\n"


def processes_with(marker: str) -> list[int]:
    """Host processes whose comm or command line contains `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm", "rb") as f, open(f"/proc/{pid}/cmdline", "rb") as g:
                text = f.read() + g.read()
        except OSError:
            continue
        if marker.encode() in text:
            found.append(int(pid))
    return found
