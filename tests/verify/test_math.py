"""The math verifier: extraction, math-verify verdicts, and the worker pool's failure handling.

Real math-verify in real worker processes; no mocks. Verdicts asserted below are what math-verify
0.9 decides (the verifier's fast path may only answer PASS where math-verify would too).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from distill.verify.answers import extract_final_answer, last_boxed, number_key
from distill.verify.math import MathVerifier, MathVerifyConfig
from distill.verify.verdict import Verdict

TOWER = "\\boxed{5^{5^{5^{5^{5}}}}}"  # hangs math-verify's comparison far past any timeout


def row(gold: str, content: str | None, reasoning: str = "") -> dict:
    return {"answer": gold, "content": content, "reasoning": reasoning}


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(MathVerifyConfig(workers=2, timeout_s=5)) as v:
        yield v


def statuses(verdicts: list[Verdict]) -> list[str]:
    return [v.status for v in verdicts]


# --- extraction (no workers) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("So the answer is $\\boxed{18}$.", "18"),
        ("first \\boxed{17}, corrected: \\boxed{18}", "18"),  # the last box wins
        ("\\boxed{\\frac{1}{2}} then \\fbox{3}", "3"),
        ("\\boxed{\\text{13}}", "\\text{13}"),
        ("nested \\boxed{\\sqrt{\\frac{a}{b}}}", "\\sqrt{\\frac{a}{b}}"),
        ("\\boxed{5} and a cut-off \\boxed{\\frac{1}{", "5"),  # unbalanced last box is skipped
        ("\\boxed{} \\boxed{7} \\boxed{}", "7"),  # empty boxes are skipped
        ("so \\boxed 5$ done", "5"),
        ("Total: 9 * 2 = 18\n#### 18", "18"),
        ("Step 1 ...\nThe final answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("Final Answer: 42", "42"),
        ("Adding up, the result is **73**.", "73"),
        ("**Answer: 73**", "73"),
        ("I am not sure what the answer is.", None),
        ("**bold** in the middle, then plain text", None),
    ],
)
def test_extract_from_content(content: str, expected: str | None) -> None:
    assert extract_final_answer(content, "reasoning with \\boxed{999}") == expected


def test_extract_falls_back_to_the_reasoning_tail_only_without_content() -> None:
    reasoning = "early guess \\boxed{1}" + "x" * 3000 + "so it is \\boxed{12}. Let me double-check"
    assert extract_final_answer(None, reasoning) == "12"
    assert extract_final_answer("   \n", reasoning) == "12"
    assert extract_final_answer(None, "\\boxed{1}" + "x" * 3000) is None  # only the last 2000 chars
    assert extract_final_answer("no answer here", reasoning) is None
    assert extract_final_answer(None, None) is None


def test_extract_is_fast_on_long_traces() -> None:
    content = ("$x^{2} + {y}$ and {braces} " * 1500) + "\\boxed{\\frac{3}{4}}" + "\\boxed{" + "{" * 2000
    start = time.perf_counter()
    for _ in range(200):
        assert last_boxed(content) == "\\frac{3}{4}"
    assert (time.perf_counter() - start) / 200 < 0.002


@pytest.mark.parametrize(
    ("text", "key"),
    [("18", "18"), ("1,000", "1000"), ("$1,000.50$", "1000.5"), ("18.00", "18"), ("\\$18", "18"),
     ("\\text{13}", None), ("-0", "0"), ("1 000", None), ("\\text{1,000}", None), ("1,2", None), ("10.", None), ("\\frac{1}{2}", None), ("1e3", None)],
)  # fmt: skip
def test_number_key(text: str, key: str | None) -> None:
    assert number_key(text) == key


# --- verdicts (real math-verify in workers) ---------------------------------------------------


def test_gsm8k_style_answers(verifier: MathVerifier) -> None:
    rows = [
        row("18", "She makes $18.\n\\boxed{18}"),
        row("18", "\\boxed{17}"),
        row("1,000", "\\boxed{1000}"),
        row("1000", "\\boxed{1,000}"),
        row("1,000", "\\boxed{999}"),
        row("13", "\\boxed{\\text{13}}"),
        row("18", "\\boxed{18 \\text{ dollars}}"),
        row("18", "\\boxed{\\$18}"),
        row("73", "The total is **73**."),
        row("18", "Thus 9 * 2 = 18\n#### 18"),
        row("18", "\\boxed{18} was wrong; it is \\boxed{19}"),  # every box is read: {18, 19}
        row("18", "\\boxed{19} was wrong; it is \\boxed{18}"),
        row("She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n9 * 2 = $<<9*2=18>>18\n#### 18", "\\boxed{18}"),
    ]
    got = verifier.verify_many(rows)
    assert statuses(got) == [
        "pass", "fail", "pass", "pass", "fail", "pass", "pass", "pass", "fail", "fail", "fail", "fail", "pass"
    ]  # fmt: skip
    assert got[1] == Verdict.failed("wrong answer")
    assert got[8] == got[9] == Verdict.failed("no boxed answer")  # the boxed policy: no box, no answer
    # math-verify reads every box of the final answer: {18, 19} is not 18, {19, 18} neither
    assert got[10] == got[11] == Verdict.failed("wrong answer")


def test_lenient_policy_reads_unboxed_answers() -> None:
    rows = [row("73", "The total is **73**."), row("18", "Thus 9 * 2 = 18\n#### 18"), row("18", "The answer is 18."),
            row("18", "A: 17"), row("18", "\\boxed{18}"), row("18", "I could not solve it.")]  # fmt: skip
    with MathVerifier(MathVerifyConfig(workers=1, answer_format="lenient")) as v:
        got = v.verify_many(rows)
    assert statuses(got) == ["pass", "pass", "pass", "fail", "pass", "fail"]
    assert got[5] == Verdict.failed("no answer found")


def test_fractions_and_decimals_follow_math_verify(verifier: MathVerifier) -> None:
    """math-verify compares a float with a rational after rounding both to 6 decimals: 0.5 == 1/2 and
    0.333333 == 1/3, but 0.333 != 1/3. Bare golds are wrapped in `\\boxed{}`, so a bare `\\frac13`
    or `\\dfrac{1}{2}` parses (plain math-verify reads neither without an anchor)."""
    rows = [
        row("\\frac{1}{2}", "\\boxed{0.5}"),
        row("0.5", "\\boxed{\\frac{1}{2}}"),
        row("$\\frac12$", "\\boxed{\\dfrac{1}{2}}"),
        row("0.5", "\\boxed{1/2}"),
        row("$\\frac{1}{3}$", "\\boxed{0.333333}"),
        row("$\\frac{1}{3}$", "\\boxed{0.333}"),
        row("\\frac{1}{2}", "\\boxed{\\frac{2}{3}}"),
        row("\\frac13", "\\boxed{\\frac{1}{3}}"),
        row("\\dfrac{1}{2}", "\\boxed{0.5}"),
    ]
    got = verifier.verify_many(rows)
    assert statuses(got) == ["pass", "pass", "pass", "pass", "pass", "fail", "fail", "pass", "pass"]


def test_missing_answers_and_bad_golds(verifier: MathVerifier) -> None:
    rows = [
        row("12", None, reasoning="... so the total is \\boxed{12}. Wait, let me"),  # cut off in <think>
        row("12", None, reasoning="... the total is \\boxed{13}. Wait"),
        row("12", "I could not solve it."),
        row("12", None, reasoning="no box"),
        row("hello world", "\\boxed{1}"),
        row("", "\\boxed{1}"),
    ]
    got = verifier.verify_many(rows)
    assert got[:2] == [Verdict.passed("equal"), Verdict.failed("wrong answer")]
    assert got[2] == Verdict.failed("no boxed answer")
    assert got[3] == Verdict.failed("no final answer")
    assert got[4] == Verdict.failed("wrong answer")  # `\\boxed{hello world}` parses (as symbols)
    assert got[5] == Verdict.errored("unparsable gold")


def test_fast_path_shortcuts() -> None:
    """The fast path's decisions on its own (its agreement with math-verify on the whole corpus is
    in test_math_differential.py)."""
    fast = MathVerifier(MathVerifyConfig(workers=1))
    # ... including FAIL, for an integer gold against a different plain integer, fraction or decimal
    wrong = Verdict.failed("wrong answer")
    assert fast._shortcut(("18", "17")) == fast._shortcut(("-7", "7")) == wrong
    assert fast._shortcut(("18", "\\frac{35}{2}")) == fast._shortcut(("18", "18.5")) == wrong
    assert fast._shortcut(("18", "\\dfrac{36}{2}")) == Verdict.passed("equal")
    assert fast._shortcut(("18", "18.0000001")) is None  # 7 decimals: math-verify rounds to 6
    assert fast._shortcut(("1234567890123456", "1234567890123457")) is None  # past 15 digits
    assert fast._shortcut(("0.5", "\\frac{1}{2}")) is None  # a decimal gold: left to math-verify
    # a fraction gold against an integer or a fraction (both Rationals to math-verify)
    assert fast._shortcut(("\\frac{37}{8}", "\\frac{74}{16}")) == fast._shortcut(("\\frac{16}{8}", "2"))
    assert fast._shortcut(("\\frac{37}{8}", "\\frac{37}{8}")) == Verdict.passed("equal")
    assert fast._shortcut(("-\\frac{3}{4}", "\\frac{3}{4}")) == wrong
    assert fast._shortcut(("\\frac{37}{8}", "4.625")) is None  # a Float: math-verify rounds
    assert fast._shortcut(("\\dfrac{3}{4}", "\\frac{3}{4}")) == Verdict.passed("equal")  # wrapped, it parses
    # an integer with text: `\\text{18}`, units after it; not words math-verify rewrites, not `007`
    passed = Verdict.passed("equal")
    assert fast._shortcut(("18", "18 \\text{ dollars}")) == fast._shortcut(("-7", "\\text{-7}")) == passed
    assert fast._shortcut(("18", "17 \\text{ dollars}")) == fast._shortcut(("0", "\\text{7}")) == wrong
    assert fast._shortcut(("18", "18 \\text{ or more}")) is None  # `or`: a set to math-verify
    assert fast._shortcut(("-7", "-7 \\text{percent}")) is None  # a percentage to math-verify
    assert fast._shortcut(("7", "\\text{007}")) is None and fast._shortcut(("007", "\\text{7}")) is None


def test_repeated_pairs_are_verified_once(verifier: MathVerifier) -> None:
    rows = [row("$\\frac{3}{4}$", "\\boxed{0.75}")] * 500 + [row("$\\frac{3}{4}$", "\\boxed{0.7}")] * 500
    start = time.perf_counter()
    got = verifier.verify_many(rows)
    assert statuses(got) == ["pass"] * 500 + ["fail"] * 500
    assert time.perf_counter() - start < 2


# --- the pool: deadlines, crashes, threads ----------------------------------------------------


@pytest.mark.parametrize("soft_timeout_s", [None, 0], ids=["soft-alarm", "hard-kill"])
def test_power_tower_times_out_and_the_next_rows_still_verify(soft_timeout_s: float | None) -> None:
    """None: the worker's own alarm ends the item; 0: no alarm, the parent kills and replaces it."""
    rows = [
        row("5", TOWER),
        row("5", "\\boxed{5}"),
        row("5", "\\boxed{\\sqrt{30}}"),
        row("$\\frac{1}{2}$", "\\boxed{0.5}"),
    ]
    with MathVerifier(MathVerifyConfig(workers=1, timeout_s=1.0, soft_timeout_s=soft_timeout_s)) as v:
        v.verify_many([row("1", "\\boxed{\\sqrt{2}}")])  # start the worker outside the timing
        before = v.worker_pids()
        start = time.monotonic()
        got = v.verify_many(rows)
        elapsed = time.monotonic() - start
        assert got == [Verdict.errored("timeout"), Verdict.passed("equal"), Verdict.failed("wrong answer"),
                       Verdict.passed("verified")]  # fmt: skip
        assert elapsed < 1.0 + 2.0  # deadline + the worker's replacement and some load slack
        assert (v.worker_pids() == before) == (soft_timeout_s is None)


def test_verify_from_a_non_main_thread(verifier: MathVerifier) -> None:
    from math_verify import parse, verify

    def plain() -> None:  # what breaks: math-verify's signal.alarm timeout outside the main thread
        verify(parse("$1$"), parse("$1$"))

    caught: list[BaseException] = []
    t = threading.Thread(target=lambda: _capture(plain, caught))
    t.start()
    t.join()
    assert caught and "threaded environment" in str(caught[0])

    results: list = []
    t = threading.Thread(
        target=lambda: results.append(verifier.verify_many([row("2", "\\boxed{\\sqrt{4}}")]))
    )
    t.start()
    t.join(timeout=30)
    assert results == [[Verdict.passed("verified")]]


def _capture(fn, sink: list) -> None:
    try:
        fn()
    except BaseException as exc:
        sink.append(exc)


def test_a_worker_killed_from_outside_is_replaced() -> None:
    with MathVerifier(MathVerifyConfig(workers=2, timeout_s=10, soft_timeout_s=0)) as v:
        v.verify_many([row("1", "\\boxed{\\sqrt{2}}"), row("2", "\\boxed{\\sqrt{5}}")])
        old = v.worker_pids()
        for pid in old:  # killed while idle: the next call gets fresh workers
            os.kill(pid, signal.SIGKILL)
        assert statuses(v.verify_many([row("$\\frac{1}{2}$", "\\boxed{0.5}"), row("3", "\\boxed{\\sqrt{10}}")])) == [
            "pass", "fail"
        ]  # fmt: skip
        assert not set(v.worker_pids()) & set(old)

        def kill_soon() -> None:  # killed mid-item: that item is a crash, not a fail
            time.sleep(1.0)
            for pid in v.worker_pids():
                os.kill(pid, signal.SIGKILL)

        threading.Thread(target=kill_soon).start()
        start = time.monotonic()
        got = v.verify_many([row("5", TOWER)])
        assert got == [Verdict.errored("crash")]
        assert time.monotonic() - start < 5
        assert v.verify_many([row("$\\frac{1}{4}$", "\\boxed{0.25}")]) == [Verdict.passed("verified")]


def test_workers_run_under_the_memory_cap() -> None:
    with MathVerifier(MathVerifyConfig(workers=1, memory_mb=1536)) as v:
        v.verify_many([row("1", "\\boxed{\\sqrt{2}}")])
        limits = Path(f"/proc/{v.worker_pids()[0]}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
    assert line.split()[3] == str(1536 * 2**20)


def test_config_is_strict() -> None:
    assert MathVerifyConfig().workers == (os.cpu_count() or 1)
    with pytest.raises(ValueError, match=r"extra|unknown"):
        MathVerifyConfig(timeout=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="soft_timeout_s"):
        MathVerifyConfig(timeout_s=2, soft_timeout_s=3)


def test_spawn_start_method_works_too() -> None:
    with MathVerifier(MathVerifyConfig(workers=1, start_method="spawn", timeout_s=1.0)) as v:
        got = v.verify_many(
            [row("5", TOWER), row("$\\frac{1}{2}$", "\\boxed{0.5}"), row("3", "\\boxed{\\sqrt{10}}")]
        )
    assert got == [Verdict.errored("timeout"), Verdict.passed("verified"), Verdict.failed("wrong answer")]


def test_a_single_box_that_parses_to_nothing_is_read_in_its_whole_text(verifier: MathVerifier) -> None:
    """One box is checked alone (equal boxes share a check); when it parses to nothing, math-verify
    reads on in the text (here the `$5$` before it), and so does the verifier."""
    from distill.verify.math import reference_verdict

    rows = [row("5", "The answer is $5$. \\boxed{?}"), row("5", "$5$ is what we get. \\boxed{\\;}")]
    assert [reference_verdict(r["answer"], r["content"])[0] for r in rows] == ["pass", "pass"]
    assert statuses(verifier.verify_many(rows)) == ["pass", "pass"]
