"""Readability filters on the five real s1K traces and realistic defects made from them."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from distill.filter.readability import (
    FILTER_NAMES,
    FILTERS,
    REASON_CODES,
    ReadabilityConfig,
    _counted_think_tags,
    _longest_paragraph,
    _widest_gap,
    boxed_answers,
    check_readability,
    long_paragraph,
    repeated_ngram_share,
    script_letters,
    think_tags,
)
from distill.text import ngram_hashes, word_hashes

TRACES = Path(__file__).resolve().parents[2] / "data" / "reasoning_traces_s1k_sample.parquet"
# A real-style Chinese passage of the kind R1 slips into English chains.
CHINESE = "所以我们需要计算这个函数在整个周期上的积分，然后比较系数。这意味着每一项都必须满足不等式。" * 4


def real_rows() -> list[dict]:
    return [
        {
            "id": f"s-{i}",
            "prompt_id": f"p-{i}",
            "problem": r["question"],
            "prompt": r["question"],
            "reasoning": r["gemini_thinking_trajectory"],
            "content": r["gemini_attempt"],
            "finish_reason": "stop",
            "domain": "math",
        }
        for i, r in enumerate(pq.read_table(TRACES).to_pylist())
    ]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return real_rows()


def with_completion(row: dict, completion: str | None = None) -> dict:
    row = dict(row)
    row["completion"] = completion or f"<think>\n{row['reasoning']}\n</think>\n\n{row['content']}"
    return row


def defects(rows: list[dict]) -> dict[str, tuple[dict, str]]:
    """filter name -> (a row that only this filter drops, its reason code)."""
    r = rows[1]  # the 20! trace, answer 128
    paras = r["reasoning"].split("\n\n")
    mid = len(paras) // 2
    loop = "\n\n".join(paras[-12:])
    return {
        "truncated": ({**r, "finish_reason": "length"}, "truncated"),
        "think_tags": (
            with_completion(
                r, "<think>\n" + "\n\n<think>\n".join(r["reasoning"].split("\n\n", 1)) + "\n</think>"
            ),
            "think_extra",
        ),
        "empty_answer": ({**r, "content": " \n"}, "empty_answer"),
        "length_bounds": ({**r, "completion_tokens": 40_000}, "too_long"),
        "language_mixing": (
            {**r, "reasoning": "\n\n".join([*paras[:mid], CHINESE, *paras[mid:]])},
            "language_mixing",
        ),
        "code_block": (
            {
                **r,
                "reasoning": r["reasoning"]
                + "\n\n```python\nfrom math import factorial\nprint(factorial(20))\n```",
            },
            "code_block",
        ),
        "long_paragraph": ({**r, "reasoning": r["reasoning"].replace("\n\n", "\n")}, "long_paragraph"),
        "repetition": ({**r, "reasoning": r["reasoning"] + ("\n\n" + loop) * 3}, "repetition"),
        "boxed_conflict": ({**r, "content": r["content"] + "\nOr rather $\\boxed{256}$."}, "boxed_conflict"),
    }


def test_the_five_real_traces_pass_every_filter(rows):
    assert len(rows) == 5
    cfg = ReadabilityConfig()
    for row in [*rows, *(with_completion(r) for r in rows)]:
        assert check_readability(row, cfg) is None
        assert all(f(row, cfg) is None for f in FILTERS)


def test_every_filter_drops_its_defect_with_its_reason_code(rows):
    cases = defects(rows)
    assert set(cases) == set(FILTER_NAMES)
    for name, (row, code) in cases.items():
        got = check_readability(row)
        assert got is not None and got[0] == name, (name, got)
        assert got[1].startswith(code + ": "), got
        assert code in REASON_CODES[name]


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_every_filter_can_be_switched_off(rows, name):
    row, _ = defects(rows)[name]
    assert check_readability(row, ReadabilityConfig(**{name: False})) is None


def test_order_reports_the_cause_first(rows):
    row = with_completion({**rows[0], "finish_reason": "length", "content": None}, "<think>\nLet $f(x)")
    assert check_readability(row)[0] == "truncated"
    assert check_readability(row, ReadabilityConfig(truncated=False))[1].startswith("think_unclosed: ")


def test_think_tags(rows):
    r, check = rows[3], lambda row: check_readability(row, ReadabilityConfig(truncated=False))
    body, answer = r["reasoning"], r["content"]
    assert check(with_completion(r, f"{body}\n</think>\n\n{answer}")) is None  # template prefilled <think>
    assert check(with_completion(r, f"<think>\n{body}")) == (
        "think_tags",
        "think_unclosed: </think> never closes the reasoning",
    )
    missing = with_completion({**r, "reasoning": None}, answer)
    assert check(missing)[1].startswith("think_missing: ")
    empty = with_completion({**r, "reasoning": "\n"}, f"<think>\n\n</think>\n\n{answer}")
    assert check(empty)[1] == "think_missing: empty reasoning"
    twice = with_completion(r, f"<think>\n{body}\n</think>\n{answer}\n</think>")
    assert check(twice)[1].startswith("think_extra: ")
    assert check({**r, "reasoning": "<think>\n" + body})[1] == "think_extra: think tag inside the reasoning"
    assert check(with_completion(r, answer)) is None  # reasoning_content returned apart from the text
    assert check(with_completion({**r, "content": None}, body))[1].startswith("think_unclosed: ")


def test_empty_answer_when_cut_off_or_blank(rows):
    assert check_readability({**rows[0], "content": None}) == (
        "empty_answer",
        "empty_answer: no content after </think>",
    )


def test_length_bounds_use_tokens_or_an_estimate(rows):
    r = rows[2]
    assert check_readability({**r, "completion_tokens": 3000}) is None
    assert check_readability({**r, "completion_tokens": 20})[1] == "too_short: 20 tokens < 64"
    short = {**r, "reasoning": "The answer is 4.", "content": "$\\boxed{4}$"}
    assert (
        check_readability(short)[1].startswith("too_short: ") and "(estimated)" in check_readability(short)[1]
    )
    assert check_readability({**r, "completion_tokens": 100}, ReadabilityConfig(max_tokens=99))[1].startswith(
        "too_long"
    )


def test_language_mixing_scripts(rows):
    r = rows[0]
    assert script_letters("Let α + β = π, so x ∈ ℝ.") == {"Latin": 6, "Greek": 3, "Common": 1}
    greek = {**r, "reasoning": r["reasoning"] + "\nαβγδ εζηθ λμνξ πρστ φχψω" * 40}  # math notation: neutral
    assert check_readability(greek) is None
    russian = {
        **r,
        "reasoning": r["reasoning"] + "\n\nСледовательно, неравенство выполняется для всех x." * 8,
    }
    assert "Cyrillic in a Latin prompt" in check_readability(russian)[1]
    chinese_prompt = "设函数 f(x) = 1 - a cos x - b sin x 对所有实数 x 非负，证明 a^2 + b^2 ≤ 2。"
    zh = {
        **r,
        "prompt": chinese_prompt,
        "reasoning": CHINESE + " 设 $f(x) = 1 - a \\cos x$, 则 $a^2+b^2 \\le 2$。",
    }
    assert check_readability(zh, ReadabilityConfig(min_tokens=0)) is None  # Latin variables are fine
    mixed = check_readability({**r, "reasoning": r["reasoning"] + CHINESE})
    assert mixed[0] == "language_mixing" and "CJK" in mixed[1]
    assert (
        check_readability(
            {**r, "reasoning": r["reasoning"] + CHINESE}, ReadabilityConfig(max_foreign_letter_share=0.05)
        )
        is None
    )


def test_code_blocks_are_fine_in_code_problems(rows):
    row, _ = defects(rows)["code_block"]
    assert check_readability({**row, "domain": "code"}) is None


def test_display_math_is_not_a_paragraph(rows):
    r = rows[0]
    matrix = (
        "$$\n" + " \\\\\n".join(" & ".join(f"a_{{{i}{j}}}" for j in range(30)) for i in range(30)) + "\n$$"
    )
    assert len(matrix) > 6000
    assert check_readability({**r, "reasoning": r["reasoning"] + "\n" + matrix + "\n"}) is None
    aligned = "\\begin{aligned}\n" + "x &= y + 1 \\\\\n" * 400 + "\\end{aligned}"
    assert (
        check_readability(
            {**r, "reasoning": r["reasoning"] + "\n" + aligned}, ReadabilityConfig(repetition=False)
        )
        is None
    )


def test_repetition_share(rows):
    assert all(repeated_ngram_share(r["reasoning"]) < 0.1 for r in rows)
    assert repeated_ngram_share("one two three four five six seven eight nine ten " * 50) > 0.95
    assert repeated_ngram_share("") == 0.0


def _share_by_direct_hashing(text: str, n: int) -> float:
    import numpy as np

    grams = ngram_hashes(word_hashes(text), n).copy()
    if grams.size < 2:
        return 0.0
    grams.sort()
    return 1.0 - (1 + np.count_nonzero(grams[1:] != grams[:-1])) / grams.size


@pytest.mark.parametrize("n", [2, 4, 7, 10, 12])
def test_repetition_share_from_half_grams_equals_direct_hashing(rows, n):
    """Even n: the n-grams are hashed from their two halves (the 5-grams MinHash reuses)."""
    loop = "\n\n".join(rows[1]["reasoning"].split("\n\n")[-12:])
    texts = [r["reasoning"] for r in rows] + [rows[1]["reasoning"] + "\n\n" + loop * 3]
    texts += ["a b c d e f g h i j", "a b c d e f g h i j k", "x " * 40, "one two three " * 50, "", "x"]
    got = [repeated_ngram_share(t, n) for t in texts]
    assert got == [_share_by_direct_hashing(t, n) for t in texts]
    assert max(got) > 0.3  # the looped trace


def test_boxed_answers_are_normalised(rows):
    r = rows[4]
    assert boxed_answers("so $\\boxed{\\frac{n+1}{2n}}$.") == ["\\frac{n+1}{2n}"]
    same = {**r, "content": "$\\boxed{\\dfrac{1}{2}}$ ... Final: $\\boxed{ \\frac{1}{2} }$."}
    assert check_readability(same) is None
    text = {**r, "content": "$\\boxed{\\text{(B)}}$ and again \\boxed{(b)}"}
    assert check_readability(text) is None


def test_config_is_strict():
    with pytest.raises(ValidationError):
        ReadabilityConfig(max_paragraph=10)
    with pytest.raises(ValidationError):
        ReadabilityConfig(max_foreign_letter_share=2)


def test_a_30kb_trace_made_of_real_ones_passes(rows):
    # (its speed is measured by benchmarks/filter_throughput.py, not here)
    row = with_completion({**rows[0], "reasoning": "\n\n".join(r["reasoning"] for r in rows)[:30_000]})
    assert check_readability(row) is None


def test_think_tags_short_cut_agrees_with_counting_the_tags(rows):
    """A completion that is exactly `<think>\\n{reasoning}\\n</think>\\n\\n{content}` skips the
    counting; every such row must get the verdict the counting gives."""
    r = rows[2]
    body, answer = r["reasoning"], r["content"]
    variants = [
        (body, answer), ("", answer), (" \n\t", answer), (body, ""), (body, " \n"),
        ("<think>\n" + body, answer), (body + "\n</think>", answer), (body, answer + "</think>"),
        (body.replace(" ", " rethink> ", 1), answer), ("x", "<think>"), ("\n", "\n"),
    ]  # fmt: skip
    cfg = ReadabilityConfig()
    for reasoning, content in variants:
        row = {**r, "reasoning": reasoning, "content": content}
        row["completion"] = f"<think>\n{reasoning}\n</think>\n\n{content}"
        assert think_tags(row, cfg) == _counted_think_tags(row), (reasoning[:20], content[:20])
    assert think_tags({**r, "completion": f"<think>\n{body}\n</think>\n\n{answer}"}, cfg) is None


def test_paragraph_gaps_bound_the_pieces_between_blank_lines():
    """`long_paragraph`'s quick check: the widest gap between "\\n\\n"s (in UTF-8 bytes) is at
    least the longest piece of `str.split("\\n\\n")` minus one (overlapping "\\n\\n\\n")."""
    rng = random.Random(0)
    for _ in range(5000):
        text = "".join(rng.choice(["a", "\n", "é", " ", "bb", "\n\n"]) for _ in range(rng.randint(0, 60)))
        longest = max(map(len, text.split("\n\n")))
        assert longest <= _widest_gap(text.encode()) + 1, repr(text)
        cfg = ReadabilityConfig(max_paragraph_chars=rng.randint(1, 12))
        slow = _longest_paragraph(text) > cfg.max_paragraph_chars  # no display math in these texts
        assert (long_paragraph({"reasoning": text}, cfg) is not None) == slow, repr(text)
