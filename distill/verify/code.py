"""Verify code answers by running their tests in the sandbox (`distill.verify.sandbox`).

Which code: the last Python code block of the final answer (`content`, the text after
`</think>`): the last block tagged python/py/python3, else the last untagged block (a trailing
untagged block after a tagged one is usually sample output). The reasoning is NOT searched by
default: the final answer is what the student is trained to give and what a user sees, so code
that appears only in the drafts of the reasoning is an incomplete answer (`fail: no code
block`). `fallback_to_reasoning: true` searches the reasoning when the answer has no block.

Test formats, the `tests` column being a JSON string, told apart by their shape (`parse_tests`):

- stdin/stdout: `[{"input": "...", "output": "..."}, ...]` (an extra `"testtype": "stdin"` is
  fine), or APPS/TACO's `{"inputs": [...], "outputs": [...]}` without `fn_name` (an input or
  output given as a list of lines is joined with newlines, as APPS does). Each case is a fresh
  sandbox run with that stdin; it passes when the exit status is 0 and stdout matches the
  expected output (`outputs_match`: line by line, trailing whitespace of every line and trailing
  empty lines ignored; with `float_tolerance` set, differing lines still match when they have the
  same number of whitespace-separated tokens and every differing token pair is two decimal
  numbers within that absolute or relative tolerance). The first failing case ends the verdict,
  which names its index.
- call-based, APPS/TACO: `{"inputs": [[arg, ...], ...], "outputs": [result, ...], "fn_name":
  "f"}`; LiveCodeBench's evaluation shape, where each input is a string of newline-separated JSON
  arguments and each output a JSON string, is read the same way. The candidate defines `f` as a
  method of a `Solution` class (LeetCode style; `Solution()` is built once) or as a top-level
  function; a `Solution` with that method wins, as in the public checkers. Before the candidate,
  the run imports what LeetCode and the checkers pre-import (`from typing import *`, the
  collections/heapq/bisect/itertools/functools names, `math`, `re`, ...) and sets the recursion
  limit to 50000 (as LiveCodeBench does). A case passes when the returned value, serialised to
  JSON INSIDE the sandbox (so tuples are lists, int dict keys strings) and read back in the
  parent, equals the expected value; APPS/TACO rows also accept an expected `[result]` wrapping
  the result (only a one-element list: APPS's own check would also take the first element of a
  longer list). An argument list whose first argument is a dict with integer-like keys gets int
  keys (JSON can't have them; the APPS checker does the same). The expected values never enter
  the sandbox: the candidate can't read them, and nothing it returns is trusted (no `__eq__` of
  its objects runs; the comparison is of plain JSON data, in the parent). With
  `float_tolerance`, float leaves compare within the tolerance.
  All cases share ONE sandbox run (as in APPS and LiveCodeBench: one process, one `Solution()`),
  which saves a sandbox start and the imports per case; the harness reports each case on its own
  stdout line, `<nonce> <index> <kind> <payload>`. Limits of that run: `timeout_s` for loading
  the candidate and `timeout_s` per case (an in-sandbox timer, `SIGALRM`, that ends the run
  reporting the case), the whole run `timeout_s * (cases + 1)` (the bound even if the candidate
  disarms the timer); stdout cap `max_output_bytes * min(cases, 16)`. The first failing case ends
  the verdict.
- LiveCodeBench rows: `{"public_test_cases": ..., "private_test_cases": ..., "metadata": ...}`,
  each given as LiveCodeBench stores it (a JSON string) or already decoded. The cases are
  `{"input", "output", "testtype"}`; public and private cases run together, as LiveCodeBench
  does. `testtype: stdin` cases are stdin/stdout cases; `functional` cases are call-based with
  `metadata.func_name`. `private_test_cases` may be LiveCodeBench's compressed form: base64 ->
  zlib -> pickle of a JSON string. The pickle is read by an unpickler that refuses every class or
  function reference (`find_class` raises), so only plain data (the string) can load; we never
  call `pickle.loads`. At most 256 MiB are decompressed.
- asserts: `{"code": "...", "entry_point": "..."}`, e.g. HumanEval's `test` defining
  `check(candidate)`: one run executes the candidate, then the test code, then
  `check(<entry_point>)`. Without `entry_point`, the test code's own asserts are the test.

How an assert run's pass is proven: the parent draws a random nonce per run and puts it on the
program's stdin after the program. The harness reads it and truncates stdin BEFORE the candidate
runs, and writes it to stdout (as the last line, then `os._exit(0)`) only after `check()` has
returned. The parent requires that exact last line; the exit status is ignored. So an early
`os._exit(0)` / `sys.exit(0)` / crash, printing fake success lines, and defining a `check` of
its own (the test code runs after the candidate and wins) all fail. The harness also restores
the builtins the candidate may have patched, clears trace/profile hooks, and runs the tests in
their own namespace, from which candidate globals that shadow builtins are left out.

What a determined adversary can still do in an assert run, since it shares the interpreter with
the test (the sandbox contains it, but can't judge it): read the nonce from the harness's frame
(`sys._getframe`), from memory (`gc`, `ctypes`, `/proc/self/mem`) and print it; patch modules
the tests import (`math.isclose`, ...); return objects whose `__eq__` is always true; leave a
thread that interferes with `check`. Stdin/stdout and call-based tests don't have this problem:
the expected output never enters the sandbox, so whatever the candidate prints or forges (it can
read the call harness's nonce too) is at most an answer of its own, judged in the parent.

Verdicts: tests that can't be read (not JSON, a shape none of the above, bad base64/zlib, a
pickle that references a class, no test cases) -> `error: unreadable tests: <why>` (a data
problem, not the candidate's; never a `fail`); a sandbox that failed to start -> `error:
sandbox: ...`; a timeout -> `fail` (a run that never got its interpreter up is a sandbox error
instead, so a timeout is the candidate's own time); memory exhaustion, crashes, output over the
cap, a missing function -> `fail`. The deadline is wall-clock: on an oversubscribed machine a
slow but correct program can time out, so keep `workers` at or below the number of cores when
the tests are CPU-heavy (trivial tests gain from more workers: a sandbox start mostly waits on
the kernel, see benchmarks/code_verify_throughput.py).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from pydantic import Field

from distill.config import StrictModel
from distill.verify.code_tests import (
    AssertTests,
    CallTests,
    Tests,
    UnreadableTests,
    normalise,
    outputs_match,
    parse_tests,
    results_match,
)
from distill.verify.sandbox import Limits, RunResult, SandboxError, find_bwrap, run_python
from distill.verify.verdict import Verdict

__all__ = ["AssertTests", "CallTests", "CodeVerifier", "CodeVerifyConfig", "Tests", "UnreadableTests",
           "extract_code", "normalise", "outputs_match", "parse_tests", "results_match"]  # fmt: skip

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3"}
MAX_CALL_OUTPUT_FACTOR = 16  # a call-based run's stdout cap: max_output_bytes * min(cases, this)


def extract_code(text: str | None) -> str | None:
    """The last Python code block of `text` (tagged python/py/python3, else untagged); None if none."""
    if not text:
        return None
    tagged, untagged = None, None
    for match in _FENCE.finditer(text):
        tag = match.group(1).lower()
        if tag in _PYTHON_TAGS:
            tagged = match.group(2)
        elif not tag:
            untagged = match.group(2)
    return tagged if tagged is not None else untagged


class CodeVerifyConfig(StrictModel):
    timeout_s: float = Field(
        6.0,
        gt=0,
        description="Wall-clock limit of one run (one stdin case, or one assert run); "
        "in a call-based run, of loading the candidate and of each case.",
    )
    memory_mb: int = Field(1536, ge=64, description="Address-space limit of the program, MiB.")
    max_output_bytes: int = Field(
        1 << 20, ge=1024, description="Cap on captured stdout (and stderr); past it: fail."
    )
    max_procs: int = Field(
        32, ge=1, description="Process/thread limit of the program (when running as root)."
    )
    workers: int = Field(2, ge=1, description="Sandboxes run at the same time by verify_many.")
    fallback_to_reasoning: bool = Field(
        False, description="Take the reasoning's last code block if the answer has none."
    )
    python: str | None = Field(
        None, description="Interpreter run in the sandbox (default: ours). Stdlib only: no site-packages."
    )
    float_tolerance: float | None = Field(
        None,
        ge=0,
        description="When set, numbers that differ still match within this absolute or relative "
        "tolerance: tokens of stdout lines that differ (same token count, both decimal numbers) "
        "and float values of call-based results. None: exact comparison. 0: same value "
        "(`1.0` matches `1`), no tolerance.",
    )

    def limits(self) -> Limits:
        return Limits(
            wall_s=self.timeout_s,
            memory_mb=self.memory_mb,
            max_procs=self.max_procs,
            max_output_bytes=self.max_output_bytes,
        )


HARNESS = """\
import builtins, os, sys


def _run(candidate, tests, entry_point):
    write, exit_, compile_, exec_, stdout = os.write, os._exit, compile, exec, sys.stdout
    settrace, setprofile, builtin_names = sys.settrace, sys.setprofile, builtins.__dict__
    nonce = os.read(0, 64).strip()
    os.ftruncate(0, 0)
    saved = dict(builtin_names)
    ns = {"__name__": "__candidate__", "__builtins__": builtins}
    exec_(compile_(candidate, "candidate.py", "exec"), ns)
    settrace(None)
    setprofile(None)
    builtin_names.clear()
    builtin_names.update(saved)
    test_ns = {k: v for k, v in ns.items() if k not in saved}
    test_ns.update(__name__="__test__", __builtins__=builtins)
    exec_(compile_(tests, "test.py", "exec"), test_ns)
    if entry_point is not None:
        test_ns["check"](ns[entry_point])
    try:
        stdout.flush()
    finally:
        write(1, b"\\n" + nonce + b"\\n")
        exit_(0)
"""

# What LeetCode and the public checkers (APPS, TACO, LiveCodeBench) have imported before a
# call-based candidate runs; no `from math import *` (its `pow` would shadow the builtin's).
CALL_PRELUDE = """\
from typing import *
from collections import *
from heapq import *
from bisect import *
from itertools import *
from functools import *
import bisect, collections, copy, functools, heapq, itertools, math, operator, random, re, string, sys
"""

# Runs in the sandbox: stdin is `nonce \\n JSON list of argument lists`. Every case's outcome is
# one stdout line `\\n<nonce> <index> <kind> <payload>\\n`, kind ok (payload: the result as JSON),
# error (a JSON string), unserialisable (a JSON string), missing or timeout. The parent compares.
CALL_HARNESS = """\
import builtins, json, os, signal, sys


def _run(candidate, prelude, fn_name, timeout_s):
    write, exit_, dumps, setitimer, REAL = os.write, os._exit, json.dumps, signal.setitimer, signal.ITIMER_REAL
    data = bytearray()
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        data += chunk
    os.ftruncate(0, 0)
    nonce, _, cases = bytes(data).partition(b"\\n")
    cases = json.loads(cases)
    del data
    index = [0]

    def emit(kind, payload=b""):
        write(1, b"\\n%s %d %s %s\\n" % (nonce, index[0], kind, payload))

    def describe(exc):
        try:
            text = "%s: %s" % (type(exc).__name__, exc)
        except BaseException:
            text = type(exc).__name__
        return dumps(text[:200]).encode()

    def on_alarm(signum, frame):
        emit(b"timeout")
        exit_(0)

    signal.signal(signal.SIGALRM, on_alarm)
    sys.setrecursionlimit(50000)
    ns = {"__name__": "__candidate__", "__builtins__": builtins}
    setitimer(REAL, timeout_s)
    try:
        exec(compile(prelude, "prelude.py", "exec"), ns)
        exec(compile(candidate, "candidate.py", "exec"), ns)
        solution = ns.get("Solution")
        if isinstance(solution, type) and hasattr(solution, fn_name):
            fn = getattr(solution(), fn_name)
        elif callable(ns.get(fn_name)):
            fn = ns[fn_name]
        else:
            fn = None
    except BaseException as exc:
        payload = describe(exc)
        setitimer(REAL, 0)
        emit(b"error", payload)
        exit_(0)
    setitimer(REAL, 0)
    if fn is None:
        emit(b"missing")
        exit_(0)
    for i, args in enumerate(cases):
        index[0] = i
        if args and isinstance(args[0], dict):
            try:
                args = [{int(k): v for k, v in args[0].items()}] + args[1:]
            except ValueError:
                pass
        setitimer(REAL, timeout_s)
        try:
            result = fn(*args)
        except BaseException as exc:
            payload = describe(exc)
            setitimer(REAL, 0)
            emit(b"error", payload)
            exit_(0)
        try:
            payload = dumps(result).encode()
        except BaseException as exc:
            payload = describe(exc)
            setitimer(REAL, 0)
            emit(b"unserialisable", payload)
            exit_(0)
        setitimer(REAL, 0)
        emit(b"ok", payload)
    exit_(0)
"""


def _why(result: RunResult) -> str:
    """The last line of stderr (e.g. `AssertionError`, `NameError: ...`), else the exit status."""
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:200] if lines else f"exit status {result.returncode}"


def _harness_lines(stdout: bytes, nonce: bytes) -> dict[int, tuple[bytes, bytes]]:
    """Case index -> (kind, payload) from the call harness's lines; the first line of an index wins."""
    records: dict[int, tuple[bytes, bytes]] = {}
    prefix = nonce + b" "
    for line in stdout.split(b"\n"):
        if not line.startswith(prefix):
            continue
        index, _, rest = line[len(prefix) :].partition(b" ")
        kind, _, payload = rest.partition(b" ")
        if index.isdigit() and len(index) < 10:
            records.setdefault(int(index), (kind, payload))
    return records


def _text(payload: bytes) -> str:
    try:
        text = json.loads(payload)
    except (ValueError, RecursionError):
        text = None
    return text if isinstance(text, str) else payload.decode("utf-8", "replace")[:200]


class CodeVerifier:
    """Runs the last code block of an answer against its tests; see the module docstring."""

    def __init__(self, config: CodeVerifyConfig | None = None) -> None:
        self.config = config or CodeVerifyConfig()
        self.limits = self.config.limits()
        find_bwrap()  # fail now, with the install hint, rather than once per row

    def verify(self, content: str | None, reasoning: str | None, tests_json: str | None) -> Verdict:
        try:
            tests = parse_tests(tests_json)
        except UnreadableTests as exc:
            return Verdict.errored(f"unreadable tests: {exc}")
        code = extract_code(content)
        if code is None and self.config.fallback_to_reasoning:
            code = extract_code(reasoning)
        if code is None or not code.strip():
            return Verdict.failed("no code block")
        try:
            if isinstance(tests, AssertTests):
                return self._run_asserts(code, tests)
            if isinstance(tests, CallTests):
                return self._run_calls(code, tests)
            return self._run_cases(code, tests)
        except SandboxError as exc:
            return Verdict.errored(f"sandbox: {exc}")

    def verify_many(self, rows: Iterable[dict], workers: int | None = None) -> list[Verdict]:
        """`verify` over trace rows (`content`, `reasoning`, `tests`), `workers` at a time, in order."""
        with ThreadPoolExecutor(max_workers=workers or self.config.workers) as pool:
            return list(
                pool.map(lambda r: self.verify(r.get("content"), r.get("reasoning"), r.get("tests")), rows)
            )

    def _run(self, code: str, stdin: bytes, limits: Limits | None = None) -> RunResult:
        return run_python(code, stdin, limits or self.limits, self.config.python)

    def _run_cases(self, code: str, cases: list[tuple[bytes, bytes]]) -> Verdict:
        for i, (stdin, expected) in enumerate(cases):
            result = self._run(code, stdin)
            if result.timed_out:
                return Verdict.failed(f"timeout on case {i}")
            if result.output_exceeded:
                return Verdict.failed(f"output limit exceeded on case {i}")
            if result.returncode != 0:
                return Verdict.failed(f"runtime error on case {i}: {_why(result)}")
            if not outputs_match(result.stdout, expected, self.config.float_tolerance):
                return Verdict.failed(f"wrong answer on case {i}")
        return Verdict.passed(f"{len(cases)} cases")

    def _run_calls(self, code: str, tests: CallTests) -> Verdict:
        n = len(tests.args)
        nonce = secrets.token_hex(16).encode()
        limits = replace(
            self.limits,
            wall_s=self.config.timeout_s * (n + 1),
            max_output_bytes=self.config.max_output_bytes * min(n, MAX_CALL_OUTPUT_FACTOR),
        )
        program = f"{CALL_HARNESS}\n_run({code!r}, {CALL_PRELUDE!r}, {tests.fn_name!r}, {self.config.timeout_s!r})\n"
        result = self._run(program, nonce + b"\n" + json.dumps(tests.args).encode(), limits)
        records = _harness_lines(result.stdout, nonce)
        for i, want in enumerate(tests.expected):
            kind, payload = records.get(i, (None, b""))
            if kind is None:
                if result.timed_out:
                    return Verdict.failed(f"timeout on case {i}")
                if result.output_exceeded:
                    return Verdict.failed(f"output limit exceeded on case {i}")
                return Verdict.failed(f"runtime error on case {i}: no result ({_why(result)})")
            if kind == b"timeout":
                return Verdict.failed(f"timeout on case {i}")
            if kind == b"missing":
                return Verdict.failed(f"no function {tests.fn_name!r} (top-level or a Solution method)")
            if kind == b"error":
                return Verdict.failed(f"runtime error on case {i}: {_text(payload)}")
            if kind == b"unserialisable":
                return Verdict.failed(f"wrong answer on case {i}: result is not JSON ({_text(payload)})")
            try:
                got = json.loads(payload) if kind == b"ok" else None
            except (ValueError, RecursionError):
                kind = None
            if kind != b"ok" or not results_match(got, want, self.config.float_tolerance, tests.unwrap):
                return Verdict.failed(f"wrong answer on case {i}")
        return Verdict.passed(f"{n} cases")

    def _run_asserts(self, code: str, tests: AssertTests) -> Verdict:
        nonce = secrets.token_hex(16).encode()
        program = f"{HARNESS}\n_run({code!r}, {tests.code!r}, {tests.entry_point!r})\n"
        result = self._run(program, nonce + b"\n")
        if result.timed_out:
            return Verdict.failed("timeout")
        if result.output_exceeded:
            return Verdict.failed("output limit exceeded")
        if result.stdout.rstrip(b"\n").rpartition(b"\n")[2] == nonce:
            return Verdict.passed("tests passed")
        return Verdict.failed(f"tests failed: {_why(result)}")
