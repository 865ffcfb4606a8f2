"""Allocator and garbage-collector settings for stages that stream large text buffers (the filter).

The filter decompresses, copies and frees tens of MB of text per input shard, in several
processes. Three defaults cost CPU there, measured with `perf` on the 20k-row filter benchmark
(`benchmarks/filter_throughput.py`), where system time was ~25% of the CPU:

- pyarrow's default pool (mimalloc) reserves its arena with `MADV_HUGEPAGE` and hands freed
  memory back with `MADV_DONTNEED`; the next shard faults it in again, zeroing 2 MiB pages
  (`clear_page_erms`, ~9% of all CPU). The system pool (glibc `malloc`) keeps freed memory.
- glibc trims the top of its heap whenever 128 KiB are free there, so the Python strings of
  the next shard (20-40 KB each: heap, not mmap) fault their pages in again.
- Python's cyclic garbage collector runs a young collection every 700 new containers and
  traverses every live object now and then: building a shard's row dicts triggers hundreds of
  collections (~3% of all CPU) that find nothing (the filter makes no reference cycles).

`before_imports()`, before pyarrow is imported, makes glibc `malloc` Arrow's C++ default
pool (`ARROW_DEFAULT_MEMORY_POOL=system`, read once when libarrow loads): the Parquet reader
allocates its decompression buffers there whatever pyarrow's own default is (with mimalloc they
landed in its huge-page arena: 4.6% of all CPU zeroing huge pages in the feature workers).
`tune_for_streaming()` switches pyarrow's own default to the system pool too (also where pyarrow
was imported first), raises glibc's trim threshold and collects garbage 100x less often (A/B on
that benchmark: CPU 19.5 -> 16.9 s, system time 4.5 -> 2.2 s; the environment variable: system
time -0.35 s more). The process then keeps its peak heap (RSS stays at the peak instead of
falling between shards; the peak itself does not grow). Forked workers inherit the settings.
Not glibc (musl, macOS): the pools and the collector only. Process-wide, so the CLI calls both
(`distill filter`), not the library: `run_filter` in someone else's process leaves their
allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import signal
import sys

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30  # free heap top kept before trimming
TOP_PAD = 64 << 20  # extra heap requested per growth: fewer brk calls
# Setting any of these turns off glibc's sliding mmap threshold (128 KiB at start): without this
# line every Arrow buffer > 128 KiB would be mmapped and unmapped, faulting on each use. 32 MiB is
# glibc's maximum; larger blocks are still mmapped.
MMAP_THRESHOLD = 32 << 20

GC_THRESHOLD = 70_000  # new containers between young collections (Python's default: 700)

_done = False
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
OPENBLAS_THREADS_ENV = "OPENBLAS_NUM_THREADS"


def before_imports() -> None:
    """Before the first `import pyarrow` or `numpy` of this process (and of its children, which
    inherit the environment): glibc as Arrow's C++ pool; one OpenBLAS thread (numpy starts a
    thread per core that spins at start-up, and the filter does no linear algebra); the collector
    already at `GC_THRESHOLD`, so that the imports of the stage do not trigger collections. A
    setting the user made in the environment is left alone."""
    os.environ.setdefault(ARROW_POOL_ENV, "system")
    os.environ.setdefault(OPENBLAS_THREADS_ENV, "1")
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)


def tune_for_streaming() -> None:
    """Idempotent; call before the bulk of the work (and before forking workers)."""
    global _done
    if _done:
        return
    _done = True
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    gc.freeze()  # what is alive now (modules, config) is never traversed again
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)
    if (libc := _libc()) is not None and hasattr(libc, "mallopt"):  # glibc
        mallopt = libc.mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        mallopt(M_TOP_PAD, TOP_PAD)
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def before_exit() -> None:
    """At the very end of a CLI stage, after its output is written and its pools and workers are
    closed: `gc.freeze()` what is still alive, so that the collections of interpreter shutdown
    traverse nothing. After a 20k-row filter run the process holds matplotlib, pandas (pulled in
    by pyarrow) and the rest: those collections took 0.15-0.2 s of wall clock between the last
    output line and the exit (0.06 s with this)."""
    gc.freeze()


PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def die_with_parent(parent: int) -> None:
    """In a worker process (a `ProcessPoolExecutor` initializer, `initargs=(os.getpid(),)`): be
    killed when the process that forked it dies, even by SIGKILL or the OOM killer; otherwise the
    worker would wait for tasks forever, holding its memory and the parent's inherited pipes
    (which keep multiprocessing's forkserver alive too). Linux only; elsewhere nothing."""
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the prctl: nobody will send the signal
        os._exit(1)


def _libc() -> ctypes.CDLL | None:
    """The C library on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
