"""The test formats of the public code sets, read into one shape, and how outputs are compared.

`parse_tests(tests_json)` tells the formats apart by their shape (see `distill/verify/code.py`'s
docstring for the list: stdin/stdout cases, APPS/TACO call-based tests, LiveCodeBench rows with
compressed private tests, assert-style tests) and raises `UnreadableTests` for a row whose tests
can't be used (`error: unreadable tests`, never a `fail`). LiveCodeBench's compressed tests are a
pickle: it is read with an unpickler that refuses every class, so only plain data loads.
`outputs_match` / `results_match` compare a run's stdout or a call's JSON result with the expected
one as the public checkers do (line by line, trailing whitespace ignored, optional float tolerance).
"""

from __future__ import annotations

import ast
import base64
import binascii
import io
import json
import math
import pickle
import re
import zlib
from dataclasses import dataclass
from typing import Any

MAX_DECOMPRESSED = 256 << 20  # bytes of LiveCodeBench's compressed private tests, decompressed


@dataclass(frozen=True)
class AssertTests:
    code: str
    entry_point: str | None


@dataclass(frozen=True)
class CallTests:
    """Call-based cases: `fn_name(*args[i])` must return `expected[i]` (plain JSON values).
    `unwrap`: an expected one-element list `[result]` also accepts `result` (APPS/TACO)."""

    fn_name: str
    args: list[list[Any]]
    expected: list[Any]
    unwrap: bool = False


class UnreadableTests(ValueError):
    """The tests column can't be used: a data problem, reported as `error: unreadable tests`."""


Tests = list[tuple[bytes, bytes]] | CallTests | AssertTests


def parse_tests(tests_json: str | None) -> Tests:
    """The row's tests in one of the formats of the module docstring, told apart by shape;
    `UnreadableTests` when they can't be used."""
    if not tests_json:
        raise UnreadableTests("missing")
    try:
        tests = json.loads(tests_json)
    except (json.JSONDecodeError, TypeError, RecursionError) as exc:
        raise UnreadableTests(f"not JSON: {exc}") from None
    if isinstance(tests, dict) and ("public_test_cases" in tests or "private_test_cases" in tests):
        return _livecodebench(tests)
    if isinstance(tests, dict) and "inputs" in tests and "outputs" in tests:
        return _apps(tests)
    if isinstance(tests, list):
        if not tests:
            raise UnreadableTests("no test cases")
        for i, case in enumerate(tests):
            if isinstance(case, dict) and case.get("testtype") == "functional":
                raise UnreadableTests(
                    f"case {i} is functional but there is no function name "
                    "(give LiveCodeBench's object with metadata.func_name)"
                )
        return [_stdin_case(i, case) for i, case in enumerate(tests)]
    if isinstance(tests, dict) and isinstance(tests.get("code"), str):
        entry = tests.get("entry_point")
        if entry is not None and not (isinstance(entry, str) and entry.isidentifier()):
            raise UnreadableTests(f"entry_point {entry!r} is not an identifier")
        try:
            tree = ast.parse(tests["code"])
        except SyntaxError as exc:
            raise UnreadableTests(f"test code does not parse: {exc}") from None
        if entry and not any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body):
            raise UnreadableTests("entry_point given but the test code defines no check()")
        return AssertTests(tests["code"], entry)
    raise UnreadableTests(
        "expected a list of {input, output} cases, an object with inputs/outputs (APPS/TACO), "
        "public_test_cases (LiveCodeBench) or code (asserts)"
    )


def _encode(text: str, what: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise UnreadableTests(f"{what} is not valid Unicode: {exc}") from None


def _stdin_case(i: int, case: Any) -> tuple[bytes, bytes]:
    if not (
        isinstance(case, dict) and isinstance(case.get("input"), str) and isinstance(case.get("output"), str)
    ):
        raise UnreadableTests(f"case {i} is not {{'input': str, 'output': str}}")
    return _encode(case["input"], f"case {i} input"), _encode(case["output"], f"case {i} output")


def _lines(value: Any, what: str) -> str:
    """An APPS stdin input/output: a string, or a list of lines joined with newlines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    raise UnreadableTests(f"{what} is neither a string nor a list of strings")


def _json_args(text: str, what: str) -> list[Any]:
    """LiveCodeBench's functional input: one JSON value per line, the arguments in order."""
    try:
        return [json.loads(line) for line in text.rstrip("\n").split("\n")] if text.strip() else []
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UnreadableTests(f"{what} is not JSON lines: {exc}") from None


def _json_value(text: Any, what: str) -> Any:
    if not isinstance(text, str):
        raise UnreadableTests(f"{what} is not a JSON string")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UnreadableTests(f"{what} is not JSON: {exc}") from None


def _fn_name(value: Any, where: str) -> str:
    if not (isinstance(value, str) and value.isidentifier()):
        raise UnreadableTests(f"{where} {value!r} is not an identifier")
    return value


def _apps(tests: dict) -> Tests:
    """APPS / TACO (and LiveCodeBench's evaluation shape): inputs, outputs, optional fn_name."""
    ins, outs = tests["inputs"], tests["outputs"]
    if not (isinstance(ins, list) and isinstance(outs, list) and len(ins) == len(outs)):
        raise UnreadableTests("'inputs' and 'outputs' must be lists of the same length")
    if not ins:
        raise UnreadableTests("no test cases")
    fn = tests.get("fn_name")
    if fn is None or fn == "":
        return [
            (
                _encode(_lines(i, f"case {k} input"), f"case {k} input"),
                _encode(_lines(o, f"case {k} output"), f"case {k} output"),
            )
            for k, (i, o) in enumerate(zip(ins, outs, strict=True))
        ]
    fn = _fn_name(fn, "fn_name")
    if all(isinstance(i, list) for i in ins):  # APPS/TACO: argument lists, plain expected values
        return CallTests(fn, ins, outs, unwrap=True)
    if all(isinstance(i, str) for i in ins):  # LiveCodeBench: JSON lines in, a JSON string out
        args = [_json_args(i, f"case {k} input") for k, i in enumerate(ins)]
        return CallTests(fn, args, [_json_value(o, f"case {k} output") for k, o in enumerate(outs)])
    raise UnreadableTests("call-based inputs must all be argument lists (or all JSON-lines strings)")


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain data only (str, bytes, numbers, lists, dicts, ...): any class or function
    reference, the only way a pickle runs code, is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refers to {module}.{name}; only plain data is accepted")


def _decompress(text: str) -> Any:
    """LiveCodeBench's compressed cases: base64 -> zlib -> pickle of a JSON string -> cases."""
    try:
        raw = base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise UnreadableTests(f"private_test_cases is neither JSON nor base64: {exc}") from None
    try:
        inflate = zlib.decompressobj()
        data = inflate.decompress(raw, MAX_DECOMPRESSED)
    except zlib.error as exc:
        raise UnreadableTests(f"private_test_cases: not zlib data: {exc}") from None
    if inflate.unconsumed_tail:
        raise UnreadableTests(f"private_test_cases: over {MAX_DECOMPRESSED >> 20} MiB decompressed")
    if not inflate.eof:
        raise UnreadableTests("private_test_cases: truncated zlib data")
    try:
        value = _PlainUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # any way a pickle can be broken is a data problem
        raise UnreadableTests(f"private_test_cases: unreadable pickle: {exc}") from None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return _json_value(value, "private_test_cases' pickled value") if isinstance(value, str) else value


def _lcb_cases(tests: dict, key: str) -> list:
    value = tests.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError) as exc:
            if key != "private_test_cases":
                raise UnreadableTests(f"{key} is not JSON: {exc}") from None
            value = _decompress(value)
    if not isinstance(value, list):
        raise UnreadableTests(f"{key} is not a list of cases")
    return value


def _livecodebench(tests: dict) -> Tests:
    cases = _lcb_cases(tests, "public_test_cases") + _lcb_cases(tests, "private_test_cases")
    if not cases:
        raise UnreadableTests("no test cases")
    meta = tests.get("metadata") or {}
    if isinstance(meta, str):
        meta = _json_value(meta, "metadata")
    if not isinstance(meta, dict):
        raise UnreadableTests("metadata is not an object")
    for i, case in enumerate(cases):
        if not (
            isinstance(case, dict)
            and isinstance(case.get("input"), str)
            and isinstance(case.get("output"), str)
        ):
            raise UnreadableTests(f"case {i} is not {{'input': str, 'output': str, 'testtype': ...}}")
    kinds = {case.get("testtype") for case in cases} - {None}
    if not kinds <= {"stdin", "functional"}:
        raise UnreadableTests(f"unknown testtype {sorted(map(str, kinds - {'stdin', 'functional'}))}")
    if len(kinds) > 1:
        raise UnreadableTests("cases mix stdin and functional testtypes")
    fn = meta.get("func_name")
    if kinds == {"functional"} or (not kinds and fn):
        if not fn:
            raise UnreadableTests("functional cases but no metadata.func_name")
        return CallTests(
            _fn_name(fn, "metadata.func_name"),
            [_json_args(c["input"], f"case {i} input") for i, c in enumerate(cases)],
            [_json_value(c["output"], f"case {i} output") for i, c in enumerate(cases)],
        )
    return [_stdin_case(i, case) for i, case in enumerate(cases)]


def normalise(out: bytes) -> bytes:
    """Trailing whitespace of every line and trailing empty lines dropped; CRLF as LF."""
    return b"\n".join(line.rstrip() for line in out.replace(b"\r\n", b"\n").split(b"\n")).rstrip(b"\n")


_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _close(a: float, b: float, tolerance: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def _tokens_match(got: bytes, expected: bytes, tolerance: float) -> bool:
    a, b = got.split(), expected.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        if not (_NUMBER.fullmatch(x) and _NUMBER.fullmatch(y) and _close(float(x), float(y), tolerance)):
            return False
    return True


def outputs_match(got: bytes, expected: bytes, float_tolerance: float | None = None) -> bool:
    """Stdout against the expected output, as the public checkers compare them: see the module
    docstring."""
    got, expected = normalise(got), normalise(expected)
    if got == expected:
        return True
    if float_tolerance is None:
        return False
    a, b = got.split(b"\n"), expected.split(b"\n")
    return len(a) == len(b) and all(
        x == y or _tokens_match(x, y, float_tolerance) for x, y in zip(a, b, strict=True)
    )


def _same(got: Any, want: Any, tolerance: float | None) -> bool:
    """Equality of two plain JSON values; float leaves within `tolerance` when it is set."""
    if tolerance is None:
        return got == want
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_same(g, w, tolerance) for g, w in zip(got, want, strict=True))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k], tolerance) for k in want)
    numbers = (int, float)
    if (
        isinstance(got, numbers)
        and isinstance(want, numbers)
        and not isinstance(got, bool)
        and not isinstance(want, bool)
        and (isinstance(got, float) or isinstance(want, float))
    ):
        try:
            return got == want or _close(float(got), float(want), tolerance)
        except OverflowError:
            return False
    return got == want


def results_match(got: Any, want: Any, float_tolerance: float | None = None, unwrap: bool = False) -> bool:
    """A call-based result (read back from JSON) against the expected value."""
    try:
        if _same(got, want, float_tolerance):
            return True
        return unwrap and isinstance(want, list) and len(want) == 1 and _same(got, want[0], float_tolerance)
    except RecursionError:
        return False


# Runs in the sandbox: candidate, then tests, then check; the nonce only after check returned.
