"""The math verifier's fast path: math-verify's verdict where it cannot be anything else, without
math-verify. The differential test (`tests/verify/test_math_differential.py`) holds it to plain
math-verify on the whole corpus; `verify.math.fast_path: false` turns it off."""

from __future__ import annotations

import re
from fractions import Fraction

from distill.verify.answers import number_key
from distill.verify.verdict import Verdict

_PLAIN_INT = re.compile(r"-?\d{1,15}")  # no +, separators, $ or decimals: an Integer to math-verify
_PLAIN_DECIMAL = re.compile(r"-?\d{1,9}\.\d{1,6}")  # a Float; at most 6 decimals: its rounding is exact
_PLAIN_FRACTION = re.compile(r"(-?)\\[dt]?frac\{(-?\d{1,9})\}\{(\d{1,9})\}")  # a Rational
_GOLD_FRACTION = _PLAIN_FRACTION  # wrapped in `\boxed{}`, a gold `\dfrac` parses as `\frac` does
# An integer in `\text{}`, or followed by one `\text{}` of words: `\text{18}`, `18 \text{ dollars}`.
# Canonical integers only: math-verify reads `\text{007}` and `\text{-0}` as text, not as 7 and 0.
_CANONICAL_INT = re.compile(r"-?[1-9]\d{0,14}|0")
_TEXT_INT = re.compile(r"\\text\{ ?(-?[1-9]\d{0,14}|0) ?\}")
_INT_WITH_WORDS = re.compile(r"(-?[1-9]\d{0,14}|0) ?\\text\{ ?([A-Za-z]+(?: [A-Za-z]+)*) ?\}")
# Words that math-verify's normalisation rewrites before it drops a trailing `\text{}` (units):
# `and`/`or` become a comma (a set), `percent`/`pct` a `%`, `inf` and `infinity` `\infty`, ` sqrt`
# `\sqrt`. Any of them (in any case, anywhere in the text) leaves the pair to math-verify.
_REWRITTEN_WORDS = re.compile(r"(?i)\b(?:and|or)\b|percent|pct|inf|sqrt")


def _plain_rational(answer: str) -> Fraction | None:
    """The exact value of an answer that math-verify reads as a plain number whose comparison with an
    Integer gold is exact: an integer (Integer == Integer), a fraction of integers (a Rational: its
    difference from the gold simplifies to 0 or not) or a decimal of at most 6 places (a Float; both
    sides are rounded to 6 places first, which changes neither). None for anything else."""
    if _PLAIN_INT.fullmatch(answer) or _PLAIN_DECIMAL.fullmatch(answer):
        return Fraction(answer)
    return _fraction(_PLAIN_FRACTION.fullmatch(answer))


def _integer_with_text(answer: str) -> int | None:
    """The integer of `\\text{18}` or of `18 \\text{ dollars}` (a trailing `\\text{}` of plain words,
    which math-verify's unit normalisation drops), else None."""
    m = _TEXT_INT.fullmatch(answer)
    if m is not None:
        return int(m.group(1))
    m = _INT_WITH_WORDS.fullmatch(answer)
    if m is None or _REWRITTEN_WORDS.search(m.group(2)):
        return None
    return int(m.group(1))


def _fraction(m: re.Match[str] | None) -> Fraction | None:
    if m is None:
        return None
    sign, numerator, denominator = m.groups()
    if int(denominator) == 0:
        return None
    return Fraction(int(numerator), int(denominator)) * (-1 if sign else 1)


def fast_verdict(pair: tuple[str, str]) -> Verdict | None:
    """math-verify's verdict where it cannot be anything else: PASS for the same plain number;
    against a plain integer gold, the verdict of an exact comparison with a plain integer,
    fraction or short decimal answer (`_plain_rational`), or with an integer in `\\text{}` or
    followed by a `\\text{}` of words (`_integer_with_text`, canonical gold only); against a plain `\\frac{a}{b}` gold,
    with a plain integer or fraction answer. Golds in any other form are left to math-verify.
    `pair` is (the gold as written, the content of the answer's one box)."""
    key = number_key(pair[0])
    if key is not None and key == number_key(pair[1]):
        return Verdict.passed("equal")
    gold, answer = pair[0].strip(), pair[1].strip()
    if _PLAIN_INT.fullmatch(gold):
        expected: Fraction | None = Fraction(int(gold))
        value = _plain_rational(answer)
        if value is None and _CANONICAL_INT.fullmatch(gold) and "\\text" in answer:
            number = _integer_with_text(answer)
            value = None if number is None else Fraction(number)
    else:
        # a fraction gold is a Rational: against an Integer or a Rational math-verify compares
        # exactly; a decimal answer (a Float) it compares after rounding, left to it
        expected = _fraction(_GOLD_FRACTION.fullmatch(gold))
        value = None if _PLAIN_DECIMAL.fullmatch(answer) else _plain_rational(answer)
    if expected is None or value is None:
        return None
    return Verdict.passed("equal") if value == expected else Verdict.failed("wrong answer")
