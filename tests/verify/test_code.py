"""The code verifier: code extraction, test formats, HumanEval for real, and adversarial answers."""

from __future__ import annotations

import gzip
import json
import os
import socket
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from distill.verify import sandbox
from distill.verify.code import (
    AssertTests,
    BadTests,
    CodeVerifier,
    CodeVerifyConfig,
    extract_code,
    normalise,
    parse_tests,
)
from distill.verify.sandbox import SandboxUnavailable
from distill.verify.verdict import Verdict
from tests.conftest import DATA, has_bwrap
from tests.verify.test_sandbox import new_marker, processes_with, tag

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
        ("[]", "empty"),
        ('[{"input": 1, "output": "2"}]', "case 0"),
        ('[{"input": "1", "output": "2"}, {"input": "1"}]', "case 1"),
        ('{"code": "def check(:"}', "does not parse"),
        ('{"code": "def check(c): pass", "entry_point": "not an id"}', "identifier"),
        ('{"code": "assert True", "entry_point": "f"}', "no check()"),
    ],
)
def test_malformed_tests_are_bad_tests(tests_json, why):
    with pytest.raises(BadTests, match=why):
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
def test_bad_tests_are_errors_and_missing_code_is_a_fail():
    verifier = CodeVerifier()
    assert verifier.verify(answer("print(1)"), None, "{oops").status == "error"
    assert verifier.verify(answer("print(1)"), None, "{oops").reason.startswith("bad tests: not JSON")
    assert verifier.verify(answer("print(1)"), None, None).reason == "bad tests: missing"
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
    from distill.verify.code import BadTests, parse_tests

    cases = parse_tests(json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["2\n", "3\n"]}))
    assert cases == [(b"1\n", b"2\n"), (b"2\n", b"3\n")]
    with pytest.raises(BadTests, match="same length"):
        parse_tests(json.dumps({"inputs": ["1"], "outputs": []}))
