"""The code verifier: code extraction, test formats, HumanEval for real, and adversarial answers."""

from __future__ import annotations

import base64
import collections
import gzip
import json
import os
import pickle
import socket
import time
import zlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from distill.verify import sandbox
from distill.verify.code import (
    AssertTests,
    CallTests,
    CodeVerifier,
    CodeVerifyConfig,
    UnreadableTests,
    extract_code,
    normalise,
    outputs_match,
    parse_tests,
    results_match,
)
from distill.verify.sandbox import SandboxUnavailable
from distill.verify.verdict import Verdict
from tests.conftest import DATA, has_bwrap
from tests.verify.helpers import new_marker, processes_with, tag

REPO = Path(__file__).resolve().parents[2]
needs_bwrap = pytest.mark.skipif(not has_bwrap(), reason="bubblewrap not installed")


def answer(code: str) -> str:
    return f"Here is my solution.\n\n```python\n{code}\n```\n\nIt runs in O(n)."


def stdio(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"input": i, "output": o} for i, o in pairs])


# ---------------------------------------------------------------- fast tier: no sandbox started


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("no code here, just `inline` text", None),
        ("```python\nprint(1)\n```", "print(1)\n"),
        ("```py\na = 1\n```\nthen\n```python3\nb = 2\n```", "b = 2\n"),
        ("```\nx = 1\n```", "x = 1\n"),
        ("```Python\nfirst\n```\ntext\n```python\nsecond\n```\n", "second\n"),
        (
            "```python\nsolve()\n```\nExample output:\n```\n42\n```",
            "solve()\n",
        ),  # tagged beats trailing output
        ("```cpp\nint main() {}\n```", None),
        ("```python\nprint(1)\n```\n```bash\npython main.py\n```", "print(1)\n"),
        ("```python\ntruncated = True\n", None),  # unterminated block
        ("```python\n```", ""),
        ("  ```python\n  indented = 1\n  ```", "  indented = 1\n"),
        ("```python title=main.py\nx = 1\n```", "x = 1\n"),
    ],
)
def test_extract_code(text, expected):
    assert extract_code(text) == expected


@pytest.mark.parametrize(
    ("tests_json", "why"),
    [
        (None, "missing"),
        ("", "missing"),
        ("not json", "not JSON"),
        ("42", "expected a list"),
        ('{"foo": 1}', "expected a list"),
        ("[]", "no test cases"),
        ('[{"input": 1, "output": "2"}]', "case 0"),
        ('[{"input": "1", "output": "2"}, {"input": "1"}]', "case 1"),
        ('{"code": "def check(:"}', "does not parse"),
        ('{"code": "def check(c): pass", "entry_point": "not an id"}', "identifier"),
        ('{"code": "assert True", "entry_point": "f"}', "no check()"),
    ],
)
def test_malformed_tests_are_unreadable(tests_json, why):
    with pytest.raises(UnreadableTests, match=why):
        parse_tests(tests_json)


def test_parse_tests_formats():
    assert parse_tests(stdio(("1\n", "2\n"))) == [(b"1\n", b"2\n")]
    assert parse_tests('{"code": "def check(c): pass", "entry_point": "f"}') == AssertTests(
        "def check(c): pass", "f"
    )
    assert parse_tests('{"code": "assert 1 + 1 == 2"}') == AssertTests("assert 1 + 1 == 2", None)


def test_normalise_drops_trailing_whitespace_only():
    assert normalise(b"1 2  \r\n3\t\n\n\n") == normalise(b"1 2\n3") == b"1 2\n3"
    assert normalise(b" 1") != normalise(b"1")
    assert normalise(b"1\n\n2") != normalise(b"1\n2")


def test_config_defaults_and_strictness():
    config = CodeVerifyConfig()
    assert (config.timeout_s, config.memory_mb, config.max_output_bytes, config.workers) == (
        6.0,
        1536,
        1 << 20,
        2,
    )
    assert config.fallback_to_reasoning is False
    limits = CodeVerifyConfig(timeout_s=2, memory_mb=512).limits()
    assert (limits.wall_s, limits.memory_mb) == (2, 512)
    with pytest.raises(ValidationError, match="timeout"):
        CodeVerifyConfig(timeout=3)
    with pytest.raises(ValidationError):
        CodeVerifyConfig(timeout_s=0)


def test_verifier_refuses_to_start_without_bwrap(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install -y bubblewrap"):
        CodeVerifier()


@needs_bwrap
def test_unreadable_tests_are_errors_and_missing_code_is_a_fail():
    verifier = CodeVerifier()
    assert verifier.verify(answer("print(1)"), None, "{oops").status == "error"
    assert verifier.verify(answer("print(1)"), None, "{oops").reason.startswith("unreadable tests: not JSON")
    assert verifier.verify(answer("print(1)"), None, None).reason == "unreadable tests: missing"
    tests = stdio(("", "1"))
    assert verifier.verify("The answer is to print 1.", None, tests) == Verdict("fail", "no code block")
    assert verifier.verify(None, answer("print(1)"), tests) == Verdict(
        "fail", "no code block"
    )  # reasoning not used
    assert verifier.verify("```python\n   \n```", None, tests) == Verdict("fail", "no code block")


# ---------------------------------------------------------------- HumanEval, for real


def humaneval() -> list[dict]:
    with gzip.open(DATA / "humaneval.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def he_item(row: dict, body: str) -> dict:
    tests = json.dumps({"code": row["test"], "entry_point": row["entry_point"]})
    return {"content": answer(row["prompt"] + body), "reasoning": "Let me think about it.", "tests": tests}


@pytest.mark.slow
@needs_bwrap
def test_humaneval_sample_canonical_pass_and_empty_bodies_fail():
    verifier = CodeVerifier()
    for row in humaneval()[::16]:  # 11 problems
        assert verifier.verify_many([he_item(row, row["canonical_solution"])])[0].status == "pass", row[
            "task_id"
        ]
        verdict = verifier.verify_many([he_item(row, "    pass\n")])[0]
        assert verdict.status == "fail", (row["task_id"], verdict)


@pytest.mark.slow
@needs_bwrap
def test_all_164_humaneval_problems():
    rows = humaneval()
    assert len(rows) == 164
    verifier = CodeVerifier()
    start = time.monotonic()
    good = verifier.verify_many([he_item(r, r["canonical_solution"]) for r in rows], workers=2)
    bad = verifier.verify_many([he_item(r, "    pass\n") for r in rows], workers=2)
    assert [r["task_id"] for r, v in zip(rows, good, strict=True) if v.status != "pass"] == []
    assert [r["task_id"] for r, v in zip(rows, bad, strict=True) if v.status != "fail"] == []
    assert time.monotonic() - start < 120


# ---------------------------------------------------------------- stdin/stdout cases


@pytest.mark.slow
@needs_bwrap
def test_stdin_cases_pass_and_a_wrong_program_fails_on_the_right_case():
    verifier = CodeVerifier()
    tests = stdio(("1\n", "2\n"), ("5\n", "6"), ("41\n", "42\n"), ("7\n", "8\n"))
    assert verifier.verify(answer("print(int(input()) + 1)"), None, tests) == Verdict("pass", "4 cases")
    wrong = "n = int(input())\nprint(n + 1 if n < 10 else n)"
    assert verifier.verify(answer(wrong), None, tests) == Verdict("fail", "wrong answer on case 2")
    spaced = "print(str(int(input()) + 1) + '   ')\nprint()\nprint()"
    assert verifier.verify(answer(spaced), None, tests).status == "pass"
    crash = "n = int(input())\nprint(n + 1)\n1 / (n - 5)"
    assert verifier.verify(answer(crash), None, tests) == Verdict(
        "fail", "runtime error on case 1: ZeroDivisionError: division by zero"
    )
    main_guard = "def main():\n    print(int(input()) + 1)\n\nif __name__ == '__main__':\n    main()"
    assert verifier.verify(answer(main_guard), None, tests).status == "pass"


@pytest.mark.slow
@needs_bwrap
def test_reasoning_fallback_when_enabled():
    tests = stdio(("", "1"))
    verifier = CodeVerifier(CodeVerifyConfig(fallback_to_reasoning=True))
    assert verifier.verify("The answer prints 1.", answer("print(1)"), tests).status == "pass"
    assert verifier.verify(answer("print(2)"), answer("print(1)"), tests).status == "fail"  # the answer wins


@pytest.mark.slow
@needs_bwrap
def test_sandbox_failure_is_an_error_not_a_fail():
    verifier = CodeVerifier(CodeVerifyConfig(python="/nonexistent/bin/python3"))
    verdict = verifier.verify(answer("print(1)"), None, stdio(("", "1")))
    assert verdict.status == "error" and verdict.reason.startswith("sandbox:")


# ---------------------------------------------------------------- adversarial answers

WRONG_HE0 = "def has_close_elements(numbers, threshold):\n    return True\n"


def he0_tests() -> str:
    row = humaneval()[0]
    return json.dumps({"code": row["test"], "entry_point": row["entry_point"]})


@pytest.fixture(scope="module")
def adversarial_verifier() -> CodeVerifier:
    """A short deadline for programs expected to fail."""
    return CodeVerifier(CodeVerifyConfig(timeout_s=2.0))


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    """The default deadline for programs expected to pass, so a loaded machine can't flake them."""
    return CodeVerifier()


def verify_tagged(verifier: CodeVerifier, code: str, tests: str):
    """Run `code` (tagged with a fresh marker) and check that no process of it is left."""
    marker = new_marker()
    start = time.monotonic()
    verdict = verifier.verify(answer(tag(marker) + code), None, tests)
    elapsed = time.monotonic() - start
    assert processes_with(marker) == [], f"processes left behind by {code!r}"
    return verdict, elapsed


ASSERT_CHEATS = {
    "os._exit before the asserts": WRONG_HE0 + "import os\nos._exit(0)\n",
    "sys.exit inside the candidate": WRONG_HE0 + "import sys\nsys.exit(0)\n",
    "fake success lines": WRONG_HE0
    + "print('PASS')\nprint('All tests passed')\nprint('0' * 32)\nprint('ok')\n",
    "redefined check": WRONG_HE0 + "def check(candidate):\n    return True\n",
    "patched builtins and AssertionError": WRONG_HE0
    + "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
    + "builtins.abs = lambda x: 0\nbuiltins.len = lambda x: 0\n",
    "atexit printing a marker": WRONG_HE0 + "import atexit\natexit.register(lambda: print('f' * 32))\n",
    "ctypes _exit": WRONG_HE0 + "import ctypes\nctypes.CDLL(None)._exit(0)\n",
    "ctypes kill everything it can": WRONG_HE0
    + "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.kill(1, 9)\nlibc.kill(-1, 9)\n",
    "re-reading stdin for the nonce": WRONG_HE0
    + "import os, sys\nos.lseek(0, 0, 0)\nlines = os.read(0, 1 << 20).decode(errors='replace').split()\n"
    + "print(lines[-1] if lines else 'none', flush=True)\nos._exit(0)\n",
    "trace and profile hooks": WRONG_HE0
    + "import sys\nsys.settrace(lambda *a: None)\nsys.setprofile(lambda *a: None)\n",
}


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("cheat", sorted(ASSERT_CHEATS))
def test_assert_cheats_fail(adversarial_verifier, cheat):
    verdict, _ = verify_tagged(adversarial_verifier, ASSERT_CHEATS[cheat], he0_tests())
    assert verdict.status == "fail", verdict


@pytest.mark.slow
@needs_bwrap
def test_a_correct_candidate_that_prints_still_passes(verifier):
    row = humaneval()[0]
    code = row["prompt"] + row["canonical_solution"] + "print('debug output', flush=False)\n"
    verdict, _ = verify_tagged(verifier, code, he0_tests())
    assert verdict.status == "pass", verdict


ABUSE = {
    "infinite loop": "while True:\n    pass\n",
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "memory bomb": "x = []\nwhile True:\n    x.append(bytearray(10**7))\n",
    "thread bomb": "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()\n",
    "output flood": "while True:\n    print('x' * 10000)\n",
}


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("abuse", sorted(ABUSE))
@pytest.mark.parametrize("mode", ["stdin", "asserts"])
def test_abusive_programs_end_as_fail_within_the_deadline(adversarial_verifier, abuse, mode):
    tests = stdio(("1\n", "2\n")) if mode == "stdin" else he0_tests()
    verdict, elapsed = verify_tagged(adversarial_verifier, ABUSE[abuse], tests)
    assert verdict.status == "fail", verdict
    assert elapsed < 2.0 + 5  # the deadline, plus teardown under load


@pytest.mark.slow
@needs_bwrap
def test_network_is_unreachable(verifier):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = (
            "import socket\nok = []\n"
            f"for addr in [('127.0.0.1', {port}), ('1.1.1.1', 80), ('8.8.8.8', 53)]:\n"
            "    try:\n        socket.create_connection(addr, timeout=1)\n        ok.append(addr)\n"
            "    except OSError:\n        pass\n"
            "print('connected' if ok else 'offline')\n"
        )
        verdict, _ = verify_tagged(verifier, code, stdio(("", "connected")))
        assert verdict == Verdict("fail", "wrong answer on case 0")
        with pytest.raises(BlockingIOError):
            server.accept()


@pytest.mark.slow
@needs_bwrap
def test_writes_never_reach_the_host(verifier):
    name = f"distill-escape-{os.getpid()}-{time.monotonic_ns()}"
    targets = [Path("/tmp") / name, REPO / name, REPO / "distill" / name, Path.home() / name]
    code = (
        "import os\n"
        + "".join(
            f"try:\n    open({str(p)!r}, 'w').write('pwned')\nexcept OSError:\n    pass\n" for p in targets
        )
        + "print(int(input()) + 1)\n"
    )
    verdict, _ = verify_tagged(verifier, code, stdio(("1\n", "2\n")))
    assert verdict.status == "pass", verdict  # the program itself is fine
    assert [p for p in targets if p.exists()] == []


@pytest.mark.slow
@needs_bwrap
def test_daemonised_sleeper_is_killed(verifier):
    marker = new_marker()
    code = (
        "import os, sys\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])\n"
        "    os._exit(0)\n"
        "print(int(input()) + 1)\n"
    )
    verdict, _ = verify_tagged(verifier, code, stdio(("1\n", "2\n")))
    assert verdict.status == "pass", verdict
    assert processes_with(marker) == []


@pytest.mark.slow
@needs_bwrap
def test_verify_many_keeps_order(verifier):
    tests = stdio(("", "1"))
    items = [{"content": answer(f"print({i % 3})"), "tests": tests} for i in range(9)]
    statuses = [v.status for v in verifier.verify_many(items, workers=3)]
    assert statuses == ["fail", "pass", "fail"] * 3


@pytest.mark.slow
@needs_bwrap
@pytest.mark.xfail(
    strict=True, reason="documented limit: the candidate shares the interpreter with the harness"
)
def test_known_limit_reading_the_nonce_from_the_harness_frame(adversarial_verifier):
    code = WRONG_HE0 + (
        "import os, sys\nnonce = sys._getframe(1).f_locals['nonce']\n"
        "print(nonce.decode(), flush=True)\nos._exit(0)\n"
    )
    verdict, _ = verify_tagged(adversarial_verifier, code, he0_tests())
    assert verdict.status == "fail", verdict


def test_apps_style_tests_become_stdin_cases():
    cases = parse_tests(json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["2\n", "3\n"]}))
    assert cases == [(b"1\n", b"2\n"), (b"2\n", b"3\n")]
    with pytest.raises(UnreadableTests, match="same length"):
        parse_tests(json.dumps({"inputs": ["1"], "outputs": []}))


# ---------------------------------------------------------------- public code sets' test shapes


def lcb_compress(cases: list[dict]) -> str:
    """LiveCodeBench's compressed private_test_cases: JSON string -> pickle -> zlib -> base64."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def lcb_row(public: list[dict], private: list[dict], func_name: str | None = None) -> str:
    """A LiveCodeBench row's test columns as the dataset stores them (JSON strings)."""
    metadata = json.dumps({"func_name": func_name} if func_name else {})
    return json.dumps(
        {
            "public_test_cases": json.dumps(public),
            "private_test_cases": lcb_compress(private),
            "metadata": metadata,
        }
    )


APPS_STDIN = json.dumps({"inputs": ["3\n1 2 3\n", "1\n5\n", ["2", "4 5"]], "outputs": ["6\n", "5\n", ["9"]]})
APPS_CALL = json.dumps(
    {
        "fn_name": "min_max",
        "inputs": [[[1, 2, 3, 4, 5]], [[2334454, 5]], [[1]]],
        "outputs": [[[1, 5]], [[5, 2334454]], [[1, 1]]],
    }
)
TACO_LEETCODE = json.dumps(
    {
        "fn_name": "maxProfit",
        "inputs": [[[7, 1, 5, 3, 6, 4]], [[7, 6, 4, 3, 1]], [[2, 4, 1]]],
        "outputs": [5, 0, 2],
    }
)
LCB_STDIN = lcb_row(
    [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}],
    [
        {"input": "10 -4\n", "output": "6\n", "testtype": "stdin"},
        {"input": "0 0\n", "output": "0\n", "testtype": "stdin"},
    ],
)
LCB_FUNCTIONAL = lcb_row(
    [{"input": "[1, 2, 3]\n2", "output": "5", "testtype": "functional"}],
    [
        {"input": "[5, -1, 4, 2]\n3", "output": "11", "testtype": "functional"},
        {"input": "[-3, -2]\n1", "output": "-2", "testtype": "functional"},
    ],
    func_name="maxSum",
)


class _Evil:
    """Pickles as a call of os.system: what a hostile compressed test column could hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_private_tests(marker: Path) -> str:
    blob = base64.b64encode(zlib.compress(pickle.dumps(_Evil(marker)))).decode()
    return json.dumps({"public_test_cases": "[]", "private_test_cases": blob, "metadata": "{}"})


def test_parse_apps_and_taco_rows():
    assert parse_tests(APPS_STDIN) == [(b"3\n1 2 3\n", b"6\n"), (b"1\n5\n", b"5\n"), (b"2\n4 5", b"9")]
    assert parse_tests(APPS_CALL) == CallTests(
        "min_max",
        [[[1, 2, 3, 4, 5]], [[2334454, 5]], [[1]]],
        [[[1, 5]], [[5, 2334454]], [[1, 1]]],
        unwrap=True,
    )
    taco = parse_tests(TACO_LEETCODE)
    assert isinstance(taco, CallTests)
    assert (taco.fn_name, taco.expected, taco.unwrap) == ("maxProfit", [5, 0, 2], True)
    # fn_name null is a stdin row, as in TACO's stdin problems
    assert parse_tests(json.dumps({"inputs": ["1\n"], "outputs": ["2\n"], "fn_name": None})) == [
        (b"1\n", b"2\n")
    ]


def test_parse_livecodebench_rows_with_compressed_private_tests():
    assert parse_tests(LCB_STDIN) == [(b"1 2\n", b"3\n"), (b"10 -4\n", b"6\n"), (b"0 0\n", b"0\n")]
    assert parse_tests(LCB_FUNCTIONAL) == CallTests(
        "maxSum", [[[1, 2, 3], 2], [[5, -1, 4, 2], 3], [[-3, -2], 1]], [5, 11, -2]
    )
    # already-decoded columns, and LiveCodeBench's evaluation shape (input_output with fn_name)
    decoded = {"public_test_cases": [{"input": "[1]\n1", "output": "1", "testtype": "functional"}]}
    decoded["metadata"] = {"func_name": "maxSum"}
    assert parse_tests(json.dumps(decoded)) == CallTests("maxSum", [[[1], 1]], [1])
    evaluation = {"inputs": ["[1, 2]\n1", '"ab"'], "outputs": ["2", '"ba"'], "fn_name": "f"}
    assert parse_tests(json.dumps(evaluation)) == CallTests("f", [[[1, 2], 1], ["ab"]], [2, "ba"])


@pytest.mark.parametrize(
    ("tests_json", "why"),
    [
        (json.dumps({"inputs": [[1]], "outputs": [1], "fn_name": "not an id"}), "not an identifier"),
        (json.dumps({"inputs": [[1], "[1]"], "outputs": [1, "1"], "fn_name": "f"}), "all be argument lists"),
        (json.dumps({"inputs": [], "outputs": []}), "no test cases"),
        (json.dumps({"inputs": [3], "outputs": ["3"]}), "neither a string nor a list"),
        (json.dumps({"inputs": ["1\n2"], "outputs": ["{"], "fn_name": "f"}), "case 0 output is not JSON"),
        (
            json.dumps({"inputs": ["[1\n2"], "outputs": ["3"], "fn_name": "f"}),
            "case 0 input is not JSON lines",
        ),
        (json.dumps([{"input": "1", "output": "2", "testtype": "functional"}]), "no function name"),
        (json.dumps({"public_test_cases": "[{oops", "metadata": "{}"}), "public_test_cases is not JSON"),
        (
            json.dumps({"public_test_cases": "[]", "private_test_cases": "not base64!!"}),
            "neither JSON nor base64",
        ),
        (json.dumps({"public_test_cases": "[]", "private_test_cases": "aGVsbG8="}), "not zlib data"),
        (
            json.dumps({"public_test_cases": "[]", "private_test_cases": lcb_compress([])[:-8] + "AAAAAAA="}),
            "zlib",
        ),
        (json.dumps({"public_test_cases": "[]", "private_test_cases": lcb_compress([])}), "no test cases"),
        (
            lcb_row([{"input": "1", "output": "1", "testtype": "functional"}], []),
            "functional cases but no metadata.func_name",
        ),
        (
            lcb_row(
                [{"input": "1", "output": "1", "testtype": "stdin"}],
                [{"input": "1", "output": "1", "testtype": "functional"}],
                "f",
            ),
            "mix stdin and functional",
        ),
        (lcb_row([{"input": "1", "output": "1", "testtype": "interactive"}], []), "unknown testtype"),
        (json.dumps({"public_test_cases": "[1]", "metadata": "{}"}), "case 0 is not"),
        (
            json.dumps({"public_test_cases": '[{"input": "", "output": ""}]', "metadata": "[1]"}),
            "metadata is not an object",
        ),
        ('[{"input": "\\ud800", "output": ""}]', "not valid Unicode"),
    ],
)
def test_unreadable_public_shapes(tests_json, why):
    with pytest.raises(UnreadableTests, match=why):
        parse_tests(tests_json)


def test_compressed_tests_never_unpickle_objects(tmp_path):
    marker = tmp_path / "pickle-ran-code"
    with pytest.raises(UnreadableTests, match=r"unreadable pickle: refers to (posix|os)\.system"):
        parse_tests(evil_private_tests(marker))
    assert not marker.exists()
    # any class is refused, harmless ones too: only plain data (str, list, dict, ...) loads
    blob = base64.b64encode(zlib.compress(pickle.dumps(collections.Counter("ab")))).decode()
    with pytest.raises(UnreadableTests, match=r"refers to collections\.Counter"):
        parse_tests(json.dumps({"public_test_cases": "[]", "private_test_cases": blob}))


def test_outputs_match_with_and_without_float_tolerance():
    assert outputs_match(b"1 2  \n3\n\n", b"1 2\n3")
    assert not outputs_match(b"0.3333333333333333\n", b"0.3333333333\n")
    assert outputs_match(b"0.3333333333333333\n", b"0.3333333333\n", 1e-6)
    assert outputs_match(b"x 1.0000001 y\n2\n", b"x 1 y\n2\n", 1e-6)
    assert outputs_match(b"1.0\n", b"1\n", 0.0)  # tolerance 0: the same value
    assert outputs_match(b"1e6\n", b"1000000.5\n", 1e-6)  # relative
    assert not outputs_match(b"0.334\n", b"0.3333333333\n", 1e-6)
    assert not outputs_match(b"1 2\n", b"1.0\n", 1e-6)  # token count differs
    assert not outputs_match(b"abc\n", b"abd\n", 1.0)  # not numbers
    assert not outputs_match(b"nan\n", b"nan \n1\n", 1.0)
    assert not outputs_match(b"inf\n", b"1e400\n", 1.0)  # words and overflowing numbers never "close"
    assert not outputs_match(b"1e400\n", b"1e401\n", 1.0)
    assert not outputs_match(b"1\n2\n", b"1\n", 1.0)  # line count differs


def test_results_match_as_the_public_checkers_do():
    assert results_match([1, 5], [1, 5])
    assert results_match([1, 5], [[1, 5]], unwrap=True)  # APPS wraps the result: [result]
    assert not results_match([1, 5], [[1, 5]])  # not for LiveCodeBench
    assert not results_match(1, [1, 2], unwrap=True)  # only a one-element wrapping
    assert results_match(5, [5], unwrap=True)
    assert results_match({"1": 2}, {"1": 2})
    assert not results_match(0.1 + 0.2, 0.3)
    assert results_match(0.1 + 0.2, 0.3, 1e-9)
    assert results_match([0.1 + 0.2, {"a": [1.0000001]}], [0.3, {"a": [1]}], 1e-6)
    assert not results_match([0.1 + 0.2, {"a": [1.1]}], [0.3, {"a": [1]}], 1e-6)
    assert not results_match(True, 1.0000001, 1e-3)  # booleans are not numbers here
    assert not results_match(10**400, 1.0, 1e-3)
    assert not results_match(2, 3, 10.0)  # integers compare exactly


def test_float_tolerance_config():
    assert CodeVerifyConfig().float_tolerance is None
    assert CodeVerifyConfig(float_tolerance=1e-6).float_tolerance == 1e-6
    with pytest.raises(ValidationError):
        CodeVerifyConfig(float_tolerance=-1)


@needs_bwrap
def test_expected_outputs_never_enter_the_sandbox(monkeypatch):
    """What the call-based run is given: the program and the arguments, never the outputs."""
    seen = []

    def fake_run(code, stdin=b"", limits=None, python=None):
        seen.append((code, stdin, limits))
        return sandbox.RunResult(0, b"", b"")

    monkeypatch.setattr("distill.verify.code.run_python", fake_run)
    secret = "expected-7f3a9"
    tests = json.dumps({"fn_name": "f", "inputs": [["arg-1"], ["arg-2"]], "outputs": [secret, [secret]]})
    verdict = CodeVerifier(CodeVerifyConfig(timeout_s=3)).verify(
        answer("def f(x):\n    return x"), None, tests
    )
    assert verdict == Verdict("fail", "runtime error on case 0: no result (exit status 0)")
    ((code, stdin, limits),) = seen
    assert b"arg-2" in stdin and secret.encode() not in stdin and secret not in code
    assert (limits.wall_s, limits.max_output_bytes) == (9, 2 << 20)  # load + 2 cases; 2 x the cap


@pytest.mark.slow
@needs_bwrap
def test_apps_stdin_row(verifier):
    right = "n = int(input())\nprint(sum(map(int, input().split())))"
    assert verifier.verify(answer(right), None, APPS_STDIN) == Verdict("pass", "3 cases")
    wrong = "n = int(input())\nprint(max(map(int, input().split())))"
    assert verifier.verify(answer(wrong), None, APPS_STDIN) == Verdict("fail", "wrong answer on case 0")


@pytest.mark.slow
@needs_bwrap
def test_apps_call_based_row(verifier):
    right = "def min_max(lst):\n    return min(lst), max(lst)\n\nprint(min_max([3, 1]))"  # a tuple, a print
    assert verifier.verify(answer(right), None, APPS_CALL) == Verdict("pass", "3 cases")
    wrong = "def min_max(lst):\n    return [max(lst), min(lst)]"
    assert verifier.verify(answer(wrong), None, APPS_CALL) == Verdict("fail", "wrong answer on case 0")
    int_keys = json.dumps({"fn_name": "total", "inputs": [[{"1": "a", "20": "b"}]], "outputs": [[21]]})
    assert verifier.verify(answer("def total(d):\n    return sum(d)"), None, int_keys).status == "pass"


@pytest.mark.slow
@needs_bwrap
def test_taco_leetcode_solution_class_row(verifier):
    right = (
        "class Solution:\n    def maxProfit(self, prices: List[int]) -> int:\n"  # List: the prelude's
        "        best, low = 0, float('inf')\n        for p in prices:\n"
        "            low = min(low, p)\n            best = max(best, p - low)\n        return best\n"
    )
    assert verifier.verify(answer(right), None, TACO_LEETCODE) == Verdict("pass", "3 cases")
    wrong = "class Solution:\n    def maxProfit(self, prices: List[int]) -> int:\n        return max(prices) - min(prices)\n"
    assert verifier.verify(answer(wrong), None, TACO_LEETCODE) == Verdict("fail", "wrong answer on case 0")
    misnamed = right.replace("def maxProfit", "def max_profit")
    assert verifier.verify(answer(misnamed), None, TACO_LEETCODE) == Verdict(
        "fail", "no function 'maxProfit' (top-level or a Solution method)"
    )


@pytest.mark.slow
@needs_bwrap
def test_livecodebench_stdin_row(verifier):
    assert verifier.verify(
        answer("a, b = map(int, input().split())\nprint(a + b)"), None, LCB_STDIN
    ) == Verdict("pass", "3 cases")
    wrong = "a, b = map(int, input().split())\nprint(abs(a) + abs(b))"  # right on the public case only
    assert verifier.verify(answer(wrong), None, LCB_STDIN) == Verdict("fail", "wrong answer on case 1")


@pytest.mark.slow
@needs_bwrap
def test_livecodebench_functional_row_with_compressed_private_tests(verifier):
    right = "class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        return sum(sorted(nums)[-k:])\n"
    assert verifier.verify(answer(right), None, LCB_FUNCTIONAL) == Verdict("pass", "3 cases")
    wrong = right.replace("sorted(nums)[-k:]", "nums[-k:]")  # right on the public case only
    assert verifier.verify(answer(wrong), None, LCB_FUNCTIONAL) == Verdict("fail", "wrong answer on case 1")
    crash = right.replace("return sum", "return nums[10] + sum")
    assert verifier.verify(answer(crash), None, LCB_FUNCTIONAL) == Verdict(
        "fail", "runtime error on case 0: IndexError: list index out of range"
    )


@pytest.mark.slow
@needs_bwrap
def test_float_tolerance_on_stdin_and_call_results():
    tests = stdio(("3\n", "0.3333333333\n"))
    exact, tolerant = CodeVerifier(), CodeVerifier(CodeVerifyConfig(float_tolerance=1e-6))
    third = answer("print(1 / int(input()))")
    assert exact.verify(third, None, tests) == Verdict("fail", "wrong answer on case 0")
    assert tolerant.verify(third, None, tests) == Verdict("pass", "1 cases")
    assert tolerant.verify(answer("print(0.334)"), None, tests) == Verdict("fail", "wrong answer on case 0")
    calls = json.dumps({"fn_name": "third", "inputs": [[3]], "outputs": [0.3333333333]})
    assert exact.verify(answer("def third(n):\n    return 1 / n"), None, calls).status == "fail"
    assert tolerant.verify(answer("def third(n):\n    return 1 / n"), None, calls).status == "pass"


@pytest.mark.slow
@needs_bwrap
def test_unreadable_public_tests_are_errors_never_fails(verifier, tmp_path):
    bad_base64 = json.dumps({"public_test_cases": "[]", "private_test_cases": "@@not base64@@"})
    marker = tmp_path / "pickle-ran-code"
    for tests, why in [
        ('{"inputs": ["1"], "outputs": ', "unreadable tests: not JSON"),
        (bad_base64, "unreadable tests: private_test_cases is neither JSON nor base64"),
        (evil_private_tests(marker), "unreadable tests: private_test_cases: unreadable pickle: refers to"),
    ]:
        verdict = verifier.verify(answer("print(1)"), None, tests)
        assert verdict.status == "error" and verdict.reason.startswith(why), verdict
    assert not marker.exists()


MAX_SUM_WRONG = "class Solution:\n    def maxSum(self, nums, k):\n        return 0\n"
CALL_CHEATS = {
    "always-equal object": MAX_SUM_WRONG.replace(
        "return 0", "return type('E', (int,), {'__eq__': lambda s, o: True, '__ne__': lambda s, o: False})(0)"
    ),
    "forged result lines with the harness's nonce": MAX_SUM_WRONG.replace(
        "return 0",
        "import os, sys\n        nonce = sys._getframe(1).f_locals['nonce']\n"
        "        for i in range(3):\n            os.write(1, b'\\n' + nonce + b' %d ok true\\n' % i)\n"
        "        os._exit(0)",
    ),
    "exit before the first case": MAX_SUM_WRONG + "import os\nos._exit(0)\n",
    "sys.exit inside the call": MAX_SUM_WRONG.replace("return 0", "import sys\n        sys.exit(0)"),
    "patched json.dumps": "import json\njson.dumps = lambda *a, **k: '5'\n" + MAX_SUM_WRONG,
}


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("cheat", sorted(CALL_CHEATS))
def test_call_based_cheats_fail(adversarial_verifier, cheat):
    verdict, _ = verify_tagged(adversarial_verifier, CALL_CHEATS[cheat], LCB_FUNCTIONAL)
    assert verdict.status == "fail", verdict


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("disarm", [False, True])
def test_call_based_infinite_loop_times_out(disarm):
    verifier = CodeVerifier(CodeVerifyConfig(timeout_s=1.0))
    loop = "while True:\n            pass"
    if disarm:  # the in-sandbox timer is gone: the whole run's deadline, 1 s x (3 cases + 1), ends it
        loop = "import signal\n        signal.setitimer(signal.ITIMER_REAL, 0)\n        " + loop
    verdict, elapsed = verify_tagged(verifier, MAX_SUM_WRONG.replace("return 0", loop), LCB_FUNCTIONAL)
    assert verdict == Verdict("fail", "timeout on case 0")
    assert (3.9 < elapsed < 4.0 + 5) if disarm else (elapsed < 1.0 + 3)
