"""Provenance and safe files: what every stage records about how an output was made, and how it
writes a file so that a crash never leaves half of one.

- `git_commit`: the commit of the distill checkout this code runs from (optionally `-dirty`).
- `package_versions`: Python and the versions of the packages that shaped an output.
- `utc_now`: the one timestamp format of every manifest and results file (`2025-01-31T12:00:00Z`).
- `sha256_file`: a file's sha256 (inputs, shards, manifests read upstream).
- `atomic_write_text` / `atomic_write_bytes`: temporary name, fsync, rename, fsync the folder.

Ground floor: imports nothing of distill, and nothing heavy (no pyarrow), so any layer may use it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

# The packages every manifest records (after Python); a stage adds its own.
BASE_PACKAGES = ("distill", "pyarrow", "datasets")


def git_commit(dirty: bool = False) -> str | None:
    """The commit of the distill checkout this code runs from, or None outside a git checkout.
    With `dirty`, `-dirty` is appended when tracked files have uncommitted changes."""
    here = str(Path(__file__).resolve().parent)
    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        commit = out.stdout.strip() if out.returncode == 0 else ""
        if not commit:
            return None
        if dirty:
            status = subprocess.run(
                ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if status.stdout.strip():
                commit += "-dirty"
    except (OSError, subprocess.SubprocessError):
        return None
    return commit


def package_versions(
    names: Iterable[str] = (), *, base: Iterable[str] = BASE_PACKAGES, keep_missing: bool = False
) -> dict[str, str | None]:
    """{"python": ..., package: version, ...} for `base` then `names`, in that order. A package that
    is not installed is left out, or recorded as None with `keep_missing`."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in (*base, *names):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if keep_missing:
                out[name] = None
    return out


def utc_now() -> str:
    """Now, in UTC, to the second: `2025-01-31T12:00:00Z` (every manifest and results file)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part:
    a temporary name beside it, fsync, rename, fsync the folder. The folder must exist."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` of `text` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def command_line() -> str | None:
    """This process's command line as the user would type it (`distill filter ...`), or None when
    the process is not the `distill` command (a stage called from Python, e.g. a test)."""
    program = sys.argv[0] if sys.argv else ""
    if Path(program).name != "distill" and not program.endswith(("distill/cli.py", "distill/__main__.py")):
        return None
    return shlex.join(["distill", *sys.argv[1:]])
