"""Sandboxed test executions per second of `distill filter`'s code verifier.

    .venv/bin/python benchmarks/code_verify_throughput.py --workers 2 --n 1000   # the default
    .venv/bin/python benchmarks/code_verify_throughput.py --workers 2 4 8        # scaling

Each worker count is run --repeat times (interleaved) and the median, min and max reported: on
a shared 2-core machine single runs of a few seconds vary by +-15%.

Each execution is one trivial program (`print(int(input()) + 1)`) against one stdin case, in its
own fresh bubblewrap sandbox (nothing reused between executions). Also times, serially, what one
execution is made of: a bare `python -S` start, bubblewrap + `python -S`, and `run_python`.
Writes benchmarks/results/code_verify_throughput.json and prints it. The load average is
recorded before and after each run: on a shared machine the figure moves with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from distill.provenance import git_commit, utc_now
from distill.verify.code import CodeVerifier, CodeVerifyConfig
from distill.verify.sandbox import ENV, Limits, command, find_bwrap, run_python

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "code_verify_throughput.json"
PROGRAM = "```python\nprint(int(input()) + 1)\n```"


def serial_ms(fn, n: int) -> float:
    """Median wall time of `fn()` in milliseconds over `n` calls."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def profile(n: int) -> dict[str, float]:
    python = os.path.realpath(sys.executable)
    read, write = os.pipe()
    sandboxed = command(python, write, Limits(), uid=123_456 if os.geteuid() == 0 else 0)
    bare_sandbox = [*sandboxed[: sandboxed.index("-c")], "-c", "pass"]
    result = {
        "python_S_start_ms": serial_ms(lambda: subprocess.run([python, "-S", "-c", "pass"], check=True), n),
        "bwrap_python_S_start_ms": serial_ms(lambda: subprocess.run(bare_sandbox, env=ENV, check=True), n),
        "run_python_ms": serial_ms(lambda: run_python("print(int(input()) + 1)", b"41\n"), n),
    }
    os.close(read)
    os.close(write)
    return result


def throughput(workers: int, n: int) -> dict:
    verifier = CodeVerifier(CodeVerifyConfig(workers=workers))
    items = [
        {"content": PROGRAM, "tests": json.dumps([{"input": f"{i}\n", "output": f"{i + 1}\n"}])}
        for i in range(n)
    ]
    verifier.verify_many(items[: 2 * workers])  # warm the page cache
    load_before = os.getloadavg()
    start = time.perf_counter()
    verdicts = verifier.verify_many(items)
    seconds = time.perf_counter() - start
    return {
        "workers": workers,
        "executions": n,
        "seconds": round(seconds, 3),
        "executions_per_s": round(n / seconds, 1),
        "verdicts": {s: sum(v.status == s for v in verdicts) for s in ("pass", "fail", "error")},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="one run per worker count")
    parser.add_argument("--n", type=int, default=300, help="executions to time per run")
    parser.add_argument("--profile-n", type=int, default=30, help="serial runs per profile step")
    parser.add_argument("--repeat", type=int, default=5, help="runs per worker count (median reported)")
    args = parser.parse_args()

    runs = [throughput(workers, args.n) for _ in range(args.repeat) for workers in args.workers]
    summary = {
        workers: {
            "median_executions_per_s": statistics.median(
                r["executions_per_s"] for r in runs if r["workers"] == workers
            ),
            "min_executions_per_s": min(r["executions_per_s"] for r in runs if r["workers"] == workers),
            "max_executions_per_s": max(r["executions_per_s"] for r in runs if r["workers"] == workers),
        }
        for workers in args.workers
    }
    bwrap = subprocess.run([find_bwrap(), "--version"], capture_output=True, text=True).stdout.strip()
    results = {
        "benchmark": "code_verify_throughput",
        "target_executions_per_s": 80,
        "by_workers": summary,
        "runs": runs,
        "serial_profile": profile(args.profile_n),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "bwrap": bwrap,
        "kernel": platform.release(),
        "as_root": os.geteuid() == 0,
        "git_commit": git_commit(),
        "when": utc_now(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
