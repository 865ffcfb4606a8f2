"""The bubblewrap sandbox, for real: isolation, limits, and that nothing outlives a run."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.verify import sandbox
from distill.verify.sandbox import Limits, SandboxError, SandboxUnavailable, run_python
from tests.conftest import has_bwrap
from tests.verify.helpers import new_marker, processes_with, tag

REPO = Path(__file__).resolve().parents[2]
needs_bwrap = pytest.mark.skipif(not has_bwrap(), reason="bubblewrap not installed")
FAST = Limits(wall_s=2.0)


def test_missing_bwrap_is_a_user_error_with_the_install_hint(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(SandboxUnavailable, match=r"apt-get install -y bubblewrap") as info:
        run_python("print(1)")
    assert isinstance(info.value, UserError) and isinstance(info.value, SandboxError)


@needs_bwrap
def test_command_isolates_everything():
    cmd = sandbox.command("/usr/bin/python3", 9, Limits(), uid=123456)
    for flag in ("--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--new-session"):
        assert flag in cmd
    assert cmd[cmd.index("--tmpfs") : cmd.index("--tmpfs") + 2] == ["--tmpfs", "/tmp"]
    assert cmd[cmd.index("--ro-bind") : cmd.index("--ro-bind") + 3] == ["--ro-bind", "/usr", "/usr"]
    assert "--bind" not in cmd  # nothing of the host is writable


@pytest.mark.slow
@needs_bwrap
def test_runs_code_with_stdin_and_reports_the_exit_status():
    result = run_python("import sys\nprint(int(input()) + 1)\nsys.exit(3)", b"41\n")
    assert (result.returncode, result.stdout, result.timed_out) == (3, b"42\n", False)
    crash = run_python("1 / 0")
    assert crash.returncode == 1 and b"ZeroDivisionError" in crash.stderr


@pytest.mark.slow
@needs_bwrap
def test_stdin_is_a_file_for_the_fast_input_idiom():
    code = "import os\ndata = os.read(0, os.fstat(0).st_size)\nprint(sum(map(int, data.split())))"
    assert run_python(code, b"1 2 3\n4\n").stdout == b"10\n"


@pytest.mark.slow
@needs_bwrap
def test_environment_is_minimal_and_each_run_gets_a_fresh_tmp():
    code = (
        "import os, json\nprint(json.dumps([sorted(os.environ), os.getcwd(), os.listdir('.')]))\n"
        "open('left.txt', 'w').write('x')"
    )
    first, second = (json.loads(run_python(code).stdout) for _ in range(2))
    env, cwd, listing = first
    assert set(env) <= {
        "PATH",
        "LANG",
        "HOME",
        "PWD",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
        "PYTHONIOENCODING",
    }
    assert (cwd, listing) == ("/tmp", [])
    assert second[2] == []  # the first run's file is gone


@pytest.mark.slow
@needs_bwrap
def test_host_files_are_invisible_and_nothing_is_written_to_the_host():
    name = f"distill-escape-{secrets.token_hex(4)}"
    targets = [Path("/tmp") / name, REPO / name, Path("/usr") / name, Path("/root") / name]
    code = (
        "import os, sys\n"
        + "".join(
            f"try:\n    open({str(p)!r}, 'w').write('x'); print('wrote', {str(p)!r})\nexcept OSError as e:\n    print('no', e)\n"
            for p in targets
        )
        + f"print('repo visible' if os.path.exists({str(REPO)!r}) else 'repo hidden')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert b"repo hidden" in result.stdout
    for path in targets:
        assert not path.exists()
    assert result.stdout.count(b"wrote") <= 1  # only the sandbox's own /tmp takes the write


@pytest.mark.slow
@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop and RLIMIT_NPROC apply when running as root")
def test_runs_unprivileged_with_its_rlimits():
    limits = Limits(memory_mb=1024, max_procs=20, file_mb=4, open_files=50)
    code = (
        "import os, resource as R, json\n"
        "caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')]\n"
        "print(json.dumps([os.getuid(), caps[0], [R.getrlimit(getattr(R, 'RLIMIT_' + n))[1] "
        "for n in ('AS', 'NPROC', 'FSIZE', 'NOFILE', 'CORE')]]))"
    )
    uid, caps, hard = json.loads(run_python(code, limits=limits).stdout)
    assert uid >= 100_000 and int(caps, 16) == 0
    assert hard == [1024 << 20, 20, 4 << 20, 50, 0]


@pytest.mark.slow
@needs_bwrap
def test_the_leftover_probe_sees_sandboxed_processes():
    """Control for the `processes_with(marker) == []` checks below: they aren't vacuous."""
    marker = new_marker()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run_python, tag(marker) + "import time\ntime.sleep(3)", b"", FAST)
        deadline = time.monotonic() + 1.5
        while not processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_with(marker)
        assert future.result().timed_out
    assert processes_with(marker) == []


@pytest.mark.slow
@needs_bwrap
def test_deadline_kills_an_infinite_loop():
    marker = new_marker()
    result = run_python(tag(marker) + "while True:\n    pass", limits=FAST)
    assert result.timed_out and result.returncode is None
    assert result.seconds < FAST.wall_s + 3
    assert processes_with(marker) == []


@pytest.mark.slow
@needs_bwrap
def test_output_is_capped():
    result = run_python("while True:\n    print('x' * 1000)", limits=Limits(max_output_bytes=100_000))
    assert result.output_exceeded and result.returncode is None
    assert len(result.stdout) == 100_000


@pytest.mark.slow
@needs_bwrap
def test_fork_bomb_is_bounded_and_leaves_nothing_behind():
    marker = new_marker()
    code = (
        tag(marker)
        + "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    result = run_python(code, limits=FAST)
    assert result.timed_out
    assert processes_with(marker) == []


@pytest.mark.slow
@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="RLIMIT_NPROC is only set when running as root")
def test_process_limit_bites():
    code = (
        "import os, time\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(60)\n    n += 1\nprint(n, flush=True)\nos._exit(0)"
    )
    result = run_python(code, limits=Limits(max_procs=10))
    assert result.returncode == 0 and 0 < int(result.stdout) < 10


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("main_loops_forever", [False, True])
def test_daemonised_grandchild_dies_with_the_sandbox(main_loops_forever):
    marker = new_marker()
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])\n"
        "    os._exit(0)\n"
        "time.sleep(0.3)\nprint('main done', flush=True)\n"
    ) + ("while True:\n    pass\n" if main_loops_forever else "")
    result = run_python(code, limits=Limits(wall_s=3.0))
    assert result.stdout == b"main done\n"
    assert result.timed_out == main_loops_forever
    assert processes_with(marker) == []


@pytest.mark.slow
@needs_bwrap
def test_no_network_inside():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            f"for addr in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:\n"
            "    s = socket.socket()\n    s.settimeout(1)\n"
            "    try:\n        s.connect(addr)\n        print('connected', addr)\n"
            "    except OSError as e:\n        print('refused', e.errno)\n"
        )
        result = run_python(code)
        assert result.returncode == 0, result.stderr
        assert b"connected" not in result.stdout and result.stdout.count(b"refused") == 3
        with pytest.raises(BlockingIOError):
            server.accept()


@pytest.mark.slow
@needs_bwrap
def test_memory_bomb_is_stopped():
    result = run_python(
        "x = []\nwhile True:\n    x.append(bytearray(10**7))", limits=Limits(memory_mb=512, wall_s=4)
    )
    assert result.timed_out or (result.returncode != 0 and b"MemoryError" in result.stderr)


@pytest.mark.slow
@needs_bwrap
def test_sandbox_that_cannot_start_is_a_sandbox_error():
    with pytest.raises(SandboxError, match="sandbox"):
        run_python("print(1)", python="/nonexistent/bin/python3")
