"""Verify code answers by running their tests in the sandbox (`distill.verify.sandbox`).

Which code: the last Python code block of the final answer (`content`, the text after
`</think>`): the last block tagged python/py/python3, else the last untagged block (a trailing
untagged block after a tagged one is usually sample output). The reasoning is NOT searched by
default: the final answer is what the student is trained to give and what a user sees, so code
that appears only in the drafts of the reasoning is an incomplete answer (`fail: no code
block`). `fallback_to_reasoning: true` searches the reasoning when the answer has no block.

Test formats, the `tests` column being a JSON string:

- stdin/stdout: `[{"input": "...", "output": "..."}, ...]` (or APPS/TACO's
  `{"inputs": [...], "outputs": [...]}`). Each case is a fresh sandbox run
  with that stdin; it passes when the exit status is 0 and stdout equals the expected output
  after trailing whitespace is dropped from every line and trailing empty lines are dropped
  (compared as bytes). The first failing case ends the verdict, which names its index.
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
thread that interferes with `check`. Stdin/stdout tests don't have this problem: the expected
output never enters the sandbox.

Verdicts: malformed tests JSON -> `error: bad tests: ...` (a data problem, not the candidate's);
a sandbox that failed to start -> `error: sandbox: ...`; a timeout -> `fail` (a run that never
got its interpreter up is a sandbox error instead, so a timeout is the candidate's own time);
memory exhaustion, crashes, output over the cap -> `fail`. The deadline is wall-clock: on an
oversubscribed machine a slow but correct program can time out, so keep `workers` at or below
the number of cores when the tests are CPU-heavy (trivial tests gain from more workers: a
sandbox start mostly waits on the kernel, see benchmarks/code_verify_throughput.py).
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pydantic import Field

from distill.config import StrictModel
from distill.verify.sandbox import Limits, RunResult, SandboxError, find_bwrap, run_python
from distill.verify.verdict import Verdict

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3"}


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
        6.0, gt=0, description="Wall-clock limit of one run (one stdin case, or one assert run)."
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

    def limits(self) -> Limits:
        return Limits(
            wall_s=self.timeout_s,
            memory_mb=self.memory_mb,
            max_procs=self.max_procs,
            max_output_bytes=self.max_output_bytes,
        )


@dataclass(frozen=True)
class AssertTests:
    code: str
    entry_point: str | None


class BadTests(ValueError):
    """The tests column can't be used: a data problem, reported as `error: bad tests`."""


def parse_tests(tests_json: str | None) -> list[tuple[bytes, bytes]] | AssertTests:
    if not tests_json:
        raise BadTests("missing")
    try:
        tests = json.loads(tests_json)
    except (json.JSONDecodeError, TypeError) as exc:
        raise BadTests(f"not JSON: {exc}") from None
    if isinstance(tests, dict) and "inputs" in tests and "outputs" in tests:
        # APPS / TACO style: {"inputs": [...], "outputs": [...]} (stdin/stdout strings)
        ins, outs = tests["inputs"], tests["outputs"]
        if not (isinstance(ins, list) and isinstance(outs, list) and len(ins) == len(outs)):
            raise BadTests("'inputs' and 'outputs' must be lists of the same length")
        tests = [{"input": i, "output": o} for i, o in zip(ins, outs, strict=True)]
    if isinstance(tests, list):
        if not tests:
            raise BadTests("empty list of cases")
        cases = []
        for i, case in enumerate(tests):
            if not (
                isinstance(case, dict)
                and isinstance(case.get("input"), str)
                and isinstance(case.get("output"), str)
            ):
                raise BadTests(f"case {i} is not {{'input': str, 'output': str}}")
            cases.append((case["input"].encode(), case["output"].encode()))
        return cases
    if isinstance(tests, dict) and isinstance(tests.get("code"), str):
        entry = tests.get("entry_point")
        if entry is not None and not (isinstance(entry, str) and entry.isidentifier()):
            raise BadTests(f"entry_point {entry!r} is not an identifier")
        try:
            tree = ast.parse(tests["code"])
        except SyntaxError as exc:
            raise BadTests(f"test code does not parse: {exc}") from None
        if entry and not any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body):
            raise BadTests("entry_point given but the test code defines no check()")
        return AssertTests(tests["code"], entry)
    raise BadTests("expected a list of {input, output} cases or an object with 'code'")


def normalise(out: bytes) -> bytes:
    """Trailing whitespace of every line and trailing empty lines dropped; CRLF as LF."""
    return b"\n".join(line.rstrip() for line in out.replace(b"\r\n", b"\n").split(b"\n")).rstrip(b"\n")


# Runs in the sandbox: candidate, then tests, then check; the nonce only after check returned.
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


def _why(result: RunResult) -> str:
    """The last line of stderr (e.g. `AssertionError`, `NameError: ...`), else the exit status."""
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:200] if lines else f"exit status {result.returncode}"


class CodeVerifier:
    """Runs the last code block of an answer against its tests; see the module docstring."""

    def __init__(self, config: CodeVerifyConfig | None = None) -> None:
        self.config = config or CodeVerifyConfig()
        self.limits = self.config.limits()
        find_bwrap()  # fail now, with the install hint, rather than once per row

    def verify(self, content: str | None, reasoning: str | None, tests_json: str | None) -> Verdict:
        try:
            tests = parse_tests(tests_json)
        except BadTests as exc:
            return Verdict.errored(f"bad tests: {exc}")
        code = extract_code(content)
        if code is None and self.config.fallback_to_reasoning:
            code = extract_code(reasoning)
        if code is None or not code.strip():
            return Verdict.failed("no code block")
        try:
            if isinstance(tests, AssertTests):
                return self._run_asserts(code, tests)
            return self._run_cases(code, tests)
        except SandboxError as exc:
            return Verdict.errored(f"sandbox: {exc}")

    def verify_many(self, rows: Iterable[dict], workers: int | None = None) -> list[Verdict]:
        """`verify` over trace rows (`content`, `reasoning`, `tests`), `workers` at a time, in order."""
        with ThreadPoolExecutor(max_workers=workers or self.config.workers) as pool:
            return list(
                pool.map(lambda r: self.verify(r.get("content"), r.get("reasoning"), r.get("tests")), rows)
            )

    def _run(self, code: str, stdin: bytes) -> RunResult:
        return run_python(code, stdin, self.limits, self.config.python)

    def _run_cases(self, code: str, cases: list[tuple[bytes, bytes]]) -> Verdict:
        for i, (stdin, expected) in enumerate(cases):
            result = self._run(code, stdin)
            if result.timed_out:
                return Verdict.failed(f"timeout on case {i}")
            if result.output_exceeded:
                return Verdict.failed(f"output limit exceeded on case {i}")
            if result.returncode != 0:
                return Verdict.failed(f"runtime error on case {i}: {_why(result)}")
            if normalise(result.stdout) != normalise(expected):
                return Verdict.failed(f"wrong answer on case {i}")
        return Verdict.passed(f"{len(cases)} cases")

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
