"""`distill filter` stopped from outside: SIGTERM (kill, docker stop, a scheduler) ends it cleanly
(workers closed, a message, exit 143, a rerun resumes); SIGKILL leaves no worker process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distill.schema import TRACE_SCHEMA, to_table
from tests.conftest import DISTILL
from tests.filter.helpers import gsm8k, real_reasoning, trace

pytestmark = pytest.mark.slow

FILES, ROWS = 16, 150


@pytest.fixture(scope="module")
def many_files(tmp_path_factory) -> Path:
    """16 Parquet trace files of 150 rows (real reasoning, GSM8K problems): a run of seconds."""
    folder = tmp_path_factory.mktemp("traces")
    texts, problems = real_reasoning(), gsm8k(20)
    for f in range(FILES):
        rows = []
        for i in range(ROWS):
            n = f * ROWS + i
            q = problems[n % 20]
            row = trace(f"r{n}", f"q{n // 4}", n % 4, texts[n % 10], "\\boxed{18}", problem=q["question"])
            row["answer"] = "18" if n % 3 else "19"
            rows.append(row)
        pq.write_table(to_table(rows, TRACE_SCHEMA), folder / f"part-{f:02d}.parquet")
    return folder


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(entry))
    return out


def _descendants(pid: int) -> list[int]:
    children, todo, found = _children(), [pid], []
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its reaper may be slow in a container)


def _start_and_wait_for_a_file(source: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*DISTILL, "filter", str(source), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own group: the signal goes to it alone, as from `kill PID`
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "rejected in the first pass" in line:
            return proc
    pytest.fail(f"the filter ended before its first file: exit {proc.wait()}")


def test_sigterm_stops_cleanly_and_the_rerun_resumes(many_files, tmp_path, cli_env):
    out = tmp_path / "out"
    proc = _start_and_wait_for_a_file(many_files, out, cli_env)
    workers = _descendants(proc.pid)
    assert len(workers) >= 3  # feature workers, math-verify's forkserver, ...
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 143
    assert "stopped by SIGTERM" in rest and "run the same command again to resume" in rest
    assert "Traceback" not in rest
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)]
    done = subprocess.run(
        [*DISTILL, "filter", str(many_files), "-o", str(out)], capture_output=True, text=True, env=cli_env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming:" in done.stderr and f"of {FILES} input files already processed" in done.stderr
    assert f"of {FILES * ROWS} rows" in done.stderr


def test_sigkill_leaves_no_worker_behind(many_files, tmp_path, cli_env):
    proc = _start_and_wait_for_a_file(many_files, tmp_path / "out", cli_env)
    workers = _descendants(proc.pid)
    assert len(workers) >= 3
    proc.kill()  # no handler runs: the workers must notice on their own
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)]
