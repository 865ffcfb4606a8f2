"""Reject reasons grouped by kind for the report."""

from __future__ import annotations

import pytest

from distill.filter.reasons import reason_group


@pytest.mark.parametrize(
    ("stage", "reason", "group"),
    [
        ("verify", "fail: wrong answer", "fail: wrong answer"),
        ("verify", "fail: wrong answer on case 3", "fail: wrong answer on case N"),
        ("verify", "fail: runtime error on case 12: ZeroDivisionError: x", "fail: runtime error on case N"),
        ("verify", "error: judge: unparsable output: 'maybe'", "error: judge"),
        ("verify", "error: timeout", "error: timeout"),
        (
            "decontaminate",
            "contaminated: shares 'a b with c d e f g h' with gsm8k.jsonl row 12",
            "contaminated (gsm8k.jsonl)",
        ),
        ("dedup", "near_duplicate: reasoning ~ s-1f (jaccard ~0.88)", "near_duplicate"),
        ("dedup", "exact_duplicate: reasoning equals s-2", "exact_duplicate"),
        ("dedup", "near_duplicate_prompt: problem of p7 duplicates p1", "near_duplicate_prompt"),
        ("select", "max_per_prompt=1: 1 of 4 kept", "max_per_prompt=1"),
        ("difficulty", "outside_band: pass rate 1.00 not in [0.1, 0.9]", "outside_band"),
        ("readability", "repetition: 23.0% of word 10-grams are repeats", "repetition"),
    ],
)
def test_reasons_are_grouped_without_row_details(stage, reason, group):
    assert reason_group(stage, reason) == group
