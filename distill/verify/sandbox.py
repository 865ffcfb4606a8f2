"""Run untrusted Python in a bubblewrap sandbox: one fresh sandbox per run, nothing shared.

Isolation comes from the OS, not from guards inside the interpreter (those `ctypes` bypasses):

- namespaces: new PID, network (loopback only, nothing listening), IPC, UTS and mount namespaces;
  the filesystem is `/usr` and the interpreter's prefix bound read-only, a private `/proc`, a
  minimal `/dev` and a size-capped tmpfs `/tmp` (the working folder, gone with the sandbox).
  Nothing else of the host (the repo, `/root`, `/etc`, the host's `/tmp`) is visible.
- as root: the program runs under a random unprivileged uid with no capabilities, so it can't
  write outside `/tmp` and RLIMIT_NPROC applies to it (it never applies to uid 0). As another
  user, bubblewrap's user namespace keeps our uid; RLIMIT_NPROC is then left unset (it would
  count all of that user's processes) and the PID namespace plus the kill below are the bound.
- rlimits (CPU, address space, processes, file size, open files, no core) are set by the boot
  code below, in the sandboxed process, before the untrusted code is read or compiled; hard and
  soft alike, and nothing in the sandbox holds CAP_SYS_RESOURCE to raise them.
- a wall-clock deadline: the namespace's PID 1 (bubblewrap's init) is SIGKILLed; when PID 1 of
  a namespace dies the kernel kills every process in it, daemonised (double fork + setsid) ones
  included, and bubblewrap exits only once they are all gone, so `wait()` returning means nothing
  is left. The program's own exit ends the namespace the same way. `--die-with-parent` covers our
  own death; bubblewrap runs in its own process group, killed as a fallback.
- stdout and stderr are read incrementally and capped; past the cap the run is killed.
- the interpreter is ours (`sys.executable`, resolved) run with `-S -s`: the standard library
  only, no site-packages; `PYTHONHASHSEED=0`; a minimal environment.

The code and the program's stdin travel in one memfd given as fd 0 (a regular file, so the
`os.read(0, os.fstat(0).st_size)` fast-input idiom works): a fixed-width length, the code, then
the input. The boot code reads exactly the code and leaves the offset at the input. It writes
one byte to a pipe once the interpreter is up, so a run that never got that far is a
`SandboxError` (our problem), never the candidate's failure.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from distill.errors import UserError

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `apt-get install -y bubblewrap`)"

# Runs inside the sandbox as `python -c BOOT ready_fd uid cpu_s as_bytes nproc fsize nofile`.
BOOT = """\
import os, resource as R, sys
_ready, _uid, *_lim = map(int, sys.argv[1:8])
for _r, _v in zip((R.RLIMIT_CPU, R.RLIMIT_AS, R.RLIMIT_NPROC, R.RLIMIT_FSIZE, R.RLIMIT_NOFILE), _lim):
    if _v >= 0:
        R.setrlimit(_r, (_v, _v + (_r == R.RLIMIT_CPU)))
R.setrlimit(R.RLIMIT_CORE, (0, 0))
if _uid:
    os.setgroups([]); os.setresgid(_uid, _uid, _uid); os.setresuid(_uid, _uid, _uid)
_n = int(os.read(0, 12)); _src = b""
while len(_src) < _n:
    _c = os.read(0, _n - len(_src)); _src += _c
    if not _c: break
os.write(_ready, b"1"); os.close(_ready)
sys.argv = ["main.py"]
_code = compile(_src, "main.py", "exec"); del _ready, _uid, _lim, _r, _v, _n, _src, _c, R
exec(_code, {"__name__": "__main__", "__builtins__": __builtins__})
"""


class SandboxError(RuntimeError):
    """The sandbox itself failed (bubblewrap missing, setup failed): never the program's fault."""


class SandboxUnavailable(SandboxError, UserError):
    """bubblewrap is not installed: the user must install it; we never run code unsandboxed."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 6.0  # wall-clock deadline of the whole run, sandbox start included
    memory_mb: int = 1536  # RLIMIT_AS of the program
    max_procs: int = 32  # RLIMIT_NPROC (as root only, see the module docstring)
    file_mb: int = 16  # RLIMIT_FSIZE
    tmp_mb: int = 64  # size of the tmpfs /tmp
    open_files: int = 64  # RLIMIT_NOFILE
    max_output_bytes: int = 1 << 20  # cap on stdout and on stderr, each


@dataclass(frozen=True)
class RunResult:
    returncode: int | None  # None when the run was killed (deadline or output cap)
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    output_exceeded: bool = False
    seconds: float = 0.0


def find_bwrap() -> str:
    path = shutil.which("bwrap") or shutil.which("bwrap", path="/usr/bin:/bin")
    if path is None:
        raise SandboxUnavailable(
            f"bubblewrap (`bwrap`) not found; code verification needs it: {INSTALL_HINT}"
        )
    return path


def _binds(python: str) -> list[str]:
    """Read-only binds: /usr, the root symlinks into it, and the interpreter's own prefix."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    for extra in dict.fromkeys((sys.base_prefix, os.path.dirname(os.path.dirname(python)))):
        if extra == "/usr" or extra.startswith("/usr/"):
            continue
        # bwrap copies the modes of the host's parent folders (/root is 0700): open them up.
        parts = extra.strip("/").split("/")
        for i in range(1, len(parts)):
            args += ["--perms", "0755", "--dir", "/" + "/".join(parts[:i])]
        args += ["--ro-bind", extra, extra]
    return args


def command(python: str, ready_fd: int, limits: Limits, uid: int) -> list[str]:
    caps = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"] if uid else []
    lims = [
        math.ceil(limits.wall_s) + 1,
        limits.memory_mb << 20,
        limits.max_procs if uid else -1,
        limits.file_mb << 20,
        limits.open_files,
    ]
    return [
        find_bwrap(),
        *("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc"),
        *("--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox", *caps, *_binds(python)),
        *("--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(limits.tmp_mb << 20)),
        *("--tmpfs", "/tmp", "--chdir", "/tmp"),
        *(python, "-S", "-s", "-B", "-c", BOOT, str(ready_fd), str(uid), *map(str, lims)),
    ]


ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "PYTHONIOENCODING": "utf-8",
}


def run_python(
    code: str, stdin: bytes = b"", limits: Limits | None = None, python: str | None = None
) -> RunResult:
    """Run `code` as `__main__` in a fresh sandbox with `stdin`; never raises for the program's
    behaviour (crash, timeout, flood), only `SandboxError` when the sandbox could not start."""
    limits = limits or Limits()
    python = os.path.realpath(python or sys.executable)
    # As root, a random unprivileged uid per run keeps RLIMIT_NPROC counts of parallel runs apart.
    uid = 100_000 + secrets.randbelow(1 << 30) if os.geteuid() == 0 else 0
    src = code.encode("utf-8", "surrogateescape")
    data = b"%012d" % len(src) + src + stdin  # BOOT reads this 12-byte length first
    stdin_fd = os.memfd_create("sandbox-stdin")
    ready_r, ready_w = os.pipe()
    start = time.monotonic()
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(stdin_fd, view) :]
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        proc = subprocess.Popen(
            command(python, ready_w, limits, uid),
            stdin=stdin_fd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(ready_w,),
            env=ENV,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(ready_r)
        raise SandboxError(f"could not start bubblewrap: {exc}") from exc
    finally:
        os.close(stdin_fd)
        os.close(ready_w)
    try:
        out, err, ready, timed_out, exceeded = _collect(proc, ready_r, start + limits.wall_s, limits)
    finally:
        os.close(ready_r)
        if proc.returncode is None:  # killed or still running: take the whole group down
            _kill(proc)
    seconds = time.monotonic() - start
    if not ready:
        why = "did not start before the deadline" if timed_out else f"exited with {proc.returncode}"
        tail = err.decode("utf-8", "replace").strip()[-500:]
        raise SandboxError(f"sandbox {why}: {tail or 'no output'}")
    returncode = None if (timed_out or exceeded) else proc.returncode
    return RunResult(returncode, out, err, timed_out, exceeded, seconds)


def _collect(proc: subprocess.Popen, ready_r: int, deadline: float, limits: Limits):
    """Read stdout/stderr (capped) and the ready pipe until all close or the deadline passes."""
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray(), ready_r: bytearray()}
    timed_out = exceeded = False
    with selectors.DefaultSelector() as sel:
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buf = bufs[key.fd]
                buf += chunk[: limits.max_output_bytes + 1 - len(buf)]
                if len(buf) > limits.max_output_bytes:
                    exceeded = True
            if exceeded:
                break
    if timed_out or exceeded:
        _kill(proc)
    else:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
    if not bufs[ready_r]:  # the deadline may have come before we read the byte
        os.set_blocking(ready_r, False)
        with contextlib.suppress(BlockingIOError):
            bufs[ready_r] += os.read(ready_r, 1)
    cap = limits.max_output_bytes
    out, err = bytes(bufs[proc.stdout.fileno()][:cap]), bytes(bufs[proc.stderr.fileno()][:cap])
    proc.stdout.close()
    proc.stderr.close()
    return out, err, bool(bufs[ready_r]), timed_out, exceeded


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the namespace's PID 1 (bubblewrap's only child) and wait for bubblewrap, which
    exits once the namespace is empty. Fallback: bubblewrap's process group (not reaped yet, so
    the id is still ours)."""
    if proc.returncode is None:
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                children = [int(pid) for pid in f.read().split()]
        except (OSError, ValueError):
            children = []
        try:
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            if not children:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
