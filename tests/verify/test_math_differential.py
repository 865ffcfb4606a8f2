"""The math verifier against plain math-verify, pair by pair (the differential test).

The reference (`reference_verdict`) is math-verify as its own docs use it: the gold wrapped in
`\\boxed{}` unless it has delimiters, parsed with the default extraction; the prediction parsed from
the final answer with boxed answers first. `MathVerifier` (fast path, caches, worker processes)
must give the same verdict on every pair of `math_corpus`, written in the shapes of MATH,
NuminaMath, OpenR1-Math and GSM8K golds and of real teachers' answers, right and wrong. The only
deliberate difference on the corpus is listed in `DELIBERATE` and in docs/filter.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from distill.verify.math import MathVerifier, MathVerifyConfig, reference_verdict
from tests.verify.math_corpus import all_golds, boxed_pairs, plain_pairs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "filter.md"


def deliberate(content: str) -> bool:
    """`\\fbox{}` counts as a box (math-verify reads only `\\boxed{}`): docs/filter.md."""
    return "\\fbox" in content


DELIBERATE = ["\\fbox"]


def compare(pairs: list[tuple[str, str]], answer_format: str, fast_path: bool = True):
    reference = [reference_verdict(g, c, answer_format) for g, c in pairs]
    with MathVerifier(MathVerifyConfig(workers=2, answer_format=answer_format, fast_path=fast_path)) as v:
        got = v.verify_many([{"answer": g, "content": c} for g, c in pairs])
    differ = [
        (g, c, ref, (mine.status, mine.reason))
        for (g, c), ref, mine in zip(pairs, reference, got, strict=True)
        if ref[0] != mine.status or (ref[0] == "fail" and ref[1] != mine.reason)
    ]
    return reference, got, differ


@pytest.fixture(scope="module")
def boxed_run():
    pairs = boxed_pairs() + plain_pairs()
    return pairs, *compare(pairs, "boxed")


def test_the_corpus_is_large_and_varied(boxed_run) -> None:
    pairs, reference, _, _ = boxed_run
    assert len(pairs) >= 2000
    outcomes = Counter(status for status, _ in reference)
    assert outcomes["pass"] >= 300 and outcomes["fail"] >= 1000  # right and wrong answers, both


def test_boxed_policy_agrees_with_plain_math_verify(boxed_run) -> None:
    _, reference, got, differ = boxed_run
    unexplained = [d for d in differ if not deliberate(d[1])]
    assert unexplained == []
    # the deliberate difference does occur in the corpus, and goes the documented way
    assert [d[3] for d in differ] == [("pass", "equal")]
    no_box = sum(v.reason == "no boxed answer" for v in got)
    assert no_box == sum(r == "no boxed answer" for _, r in reference) - len(differ) >= 300


def test_every_deliberate_difference_is_documented() -> None:
    text = DOCS.read_text()
    assert "Deliberate differences from plain math-verify" in text
    assert all(f"`{marker}" in text for marker in DELIBERATE)


def test_lenient_policy_agrees_with_plain_math_verify() -> None:
    pairs = plain_pairs() + boxed_pairs()[::7]
    reference, got, differ = compare(pairs, "lenient")
    assert len(pairs) >= 800
    assert [d for d in differ if not deliberate(d[1])] == []
    assert Counter(s for s, _ in reference)["pass"] >= 80
    # unboxed replies are read: "The answer is 3", "#### 3", "Final answer: $3$"
    assert any(v.status == "pass" and "\\boxed" not in c for (_, c), v in zip(pairs, got, strict=True))


def test_without_the_fast_path_too() -> None:
    """The worker path alone (every pair through math-verify in the workers) on a slice."""
    pairs = boxed_pairs()[::4]
    _, got, differ = compare(pairs, "boxed", fast_path=False)
    assert [d for d in differ if not deliberate(d[1])] == []
    assert not any(v.reason == "equal" for v in got)


def test_the_fast_path_answers_a_good_share(boxed_run) -> None:
    _, _, got, _ = boxed_run
    assert sum(v.reason == "equal" for v in got) >= 120


def test_unparsable_golds_are_rare(boxed_run) -> None:
    pairs, reference, _, _ = boxed_run
    golds = all_golds()
    bad = {g for (g, _), (_, reason) in zip(pairs, reference, strict=True) if reason == "unparsable gold"}
    assert len(golds) >= 100
    assert len(bad) / len(golds) < 0.005, sorted(bad)


@pytest.mark.parametrize(
    ("gold", "content", "status"),
    [
        ("\\dfrac{207}{64}", "So the answer is $\\boxed{\\frac{207}{64}}$.", "pass"),
        ("(\\frac{2}{3},1)\\cup(7,\\infty)", "\\boxed{(\\frac23,1)\\cup(7,\\infty)}", "pass"),
        ("(\\frac{2}{3},1)\\cup(7,\\infty)", "\\boxed{\\frac{2}{3}}", "fail"),  # not cut apart any more
        ("(6,1)", "\\boxed{(6, 1)}", "pass"),
        ("\\sin^2t", "\\boxed{\\sin^2 t}", "pass"),
        ("(2,2),(6,2)", "\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}", "pass"),
        ("1, 2, 3", "\\boxed{1},\\boxed{2},\\boxed{3}", "pass"),
        ("45", "\\boxed{k = 45}", "pass"),
    ],
)
def test_the_cases_from_public_data(verifier: MathVerifier, gold: str, content: str, status: str) -> None:
    assert verifier.verify_many([{"answer": gold, "content": content}])[0].status == status
    assert reference_verdict(gold, content)[0] == status


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(MathVerifyConfig(workers=1)) as v:
        yield v
