"""`distill.memory.tune_for_streaming`: process-wide, so checked in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import gc, json
import pyarrow as pa
before = {"pool": pa.default_memory_pool().backend_name, "gc": gc.get_threshold()[0]}
from distill.memory import tune_for_streaming
tune_for_streaming()
tune_for_streaming()  # idempotent
table = pa.table({"text": ["x" * 50_000] * 100})  # allocations still work
print(json.dumps({"before": before, "pool": pa.default_memory_pool().backend_name,
                  "gc": gc.get_threshold()[0], "frozen": gc.get_freeze_count(),
                  "bytes": pa.default_memory_pool().bytes_allocated(), "rows": table.num_rows}))
"""


def test_tune_for_streaming_switches_the_arrow_pool_and_the_collector() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env)
    got = json.loads(out.stdout)
    assert got["before"]["pool"] != "system" and got["before"]["gc"] == 700  # the defaults it changes
    assert got["pool"] == "system"
    assert got["gc"] == 70_000
    assert got["frozen"] > 0  # objects alive at the call are out of the collector's way
    assert got["rows"] == 100 and got["bytes"] >= 5_000_000  # the table lives in the system pool


def test_the_filter_command_sets_pools_threads_and_collector_before_the_imports() -> None:
    """The C++ default pool (Parquet's decompression buffers) is chosen when libarrow loads and
    OpenBLAS's threads when numpy loads: the command must set both before anything imports
    pyarrow or numpy, and leave a user's choice alone."""
    probe = (
        "import sys, os, gc\n"
        "from distill.memory import before_imports\n"
        "before_imports()\n"
        "assert 'pyarrow' not in sys.modules and 'numpy' not in sys.modules\n"
        "import numpy\n"
        "threads = open('/proc/self/status').read().split('Threads:')[1].split()[0]\n"
        "import pyarrow as pa\n"
        "print(os.environ['ARROW_DEFAULT_MEMORY_POOL'], pa.default_memory_pool().backend_name,\n"
        "      os.environ['OPENBLAS_NUM_THREADS'], gc.get_threshold()[0], threads)\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL", "OPENBLAS_NUM_THREADS")
    }
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["system", "system", "1", "70000", "1"]  # no OpenBLAS thread
    env["ARROW_DEFAULT_MEMORY_POOL"], env["OPENBLAS_NUM_THREADS"] = "jemalloc", "4"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split()[:4] == ["jemalloc", "jemalloc", "4", "70000"]
    source = (Path(__file__).resolve().parents[1] / "distill" / "filter" / "command.py").read_text()
    assert source.index("before_imports()") < source.index("load_stage_config(")
