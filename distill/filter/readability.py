"""Readability and format filters of the R1 recipe: each returns None to keep a trace row, or a
reason string to drop it, "<reason_code>: <detail>".

`check_readability(row, cfg)` runs the enabled filters in this fixed order (causes before their
symptoms, cheap before costly) and returns `(filter_name, reason)` of the first that fails:

| # | filter | reason codes | default | why this default |
|---|--------|--------------|---------|------------------|
| 1 | truncated | truncated | on | `finish_reason == "length"`: the chain was cut off; never a training target |
| 2 | think_tags | think_missing, think_unclosed, think_extra | on | in `completion`, exactly one `</think>` and at most one `<think>` before it (templates that prefill `<think>` hide the opening tag); no tag inside reasoning or content; non-blank reasoning. A completion with no tag at all but non-blank reasoning and non-null content is accepted (a server that returns `reasoning_content` separately) |
| 3 | empty_answer | empty_answer | on | content None (cut off) or blank: nothing after `</think>` to learn the answer format from |
| 4 | length_bounds | too_short, too_long | 64..32768 tokens | `completion_tokens`, else len(completion or reasoning+content) / 4 (English BPE ~4 chars/token; LaTeX ~3, so the estimate errs short). < 64 tokens (~250 chars) is no chain of thought; 32768 is the SFT max length of OpenR1-Distill and the R1 eval budget: longer traces would be truncated in training. Real s1K traces: 2,000-4,100 |
| 5 | language_mixing | language_mixing | 1% of letters | letters (Unicode category L) in reasoning + content whose script is foreign to the prompt's main script. Greek and symbol-like letters (letterlike symbols such as the blackboard R, math alphanumerics, modifier letters) are neutral: math uses them everywhere. Han, kana and bopomofo count as one script (CJK) so Japanese is not "mixed". The prompt's main script is Latin unless >= 10% of its letters are of another script (then the most frequent one: Latin letters in a prompt are often formula variables); for a non-Latin prompt, Latin letters are tolerated too (variables, code, formulas), so an all-English trace to a Chinese prompt passes. Real English traces: 0.0%. 1% of a 10 KB trace is ~70 CJK characters, two or three sentences |
| 6 | code_block | code_block | on | a line opening a ``` fence inside the reasoning when `domain != "code"` (R1 drops code blocks from non-code chains). Real math traces: none |
| 7 | long_paragraph | long_paragraph | 3000 chars | blocks split on blank lines after removing display math (`$$..$$`, `\\[..\\]`, `\\begin{env}..\\end{env}`) and code fences, which are not prose. Counted in characters, not words, so that CJK (no spaces) is measured too. Real traces: max 1,421 (a run of equation lines), typical < 500; 3000 (~500 words) is twice the real maximum |
| 8 | repetition | repetition | 0.20 of word 10-grams | share of word 10-gram occurrences that repeat an earlier one (words as in `distill.text.word_hashes`). Real traces: 0.03-0.07 (re-checked formulas); a real trace that repeats its last quarter once more scores 0.23-0.25, three more times 0.45. Hashing in numpy: ~0.6 ms of CPU on 30 KB |
| 9 | boxed_conflict | boxed_conflict | on | more than one distinct `\\boxed{}` in content after normalisation (spaces, `\\left`/`\\right`, thin spaces, `\\dfrac`, `\\text{}`, `$`, trailing dot, case). Caveat: multi-part answers boxed separately are dropped; switch off for such sets |

Every filter can be switched off (`<name>: false`); thresholds are fields of `ReadabilityConfig`.
The five real s1K traces in `data/reasoning_traces_s1k_sample.parquet` pass every filter.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import Field

from distill.config import StrictModel
from distill.text import ngram_hashes, paired_ngram_hashes, utf8, word_hashes
from distill.trace import assistant_text

Row = Mapping[str, Any]
_FRAME = len(assistant_text("", ""))  # the completion's characters around the parts


class ReadabilityConfig(StrictModel):
    truncated: bool = Field(True, description="Drop finish_reason == 'length'.")
    think_tags: bool = Field(True, description="Drop missing, unclosed or extra <think> tags.")
    empty_answer: bool = Field(True, description="Drop blank or missing content after </think>.")
    length_bounds: bool = Field(True, description="Drop completions outside min/max tokens.")
    min_tokens: int = Field(64, ge=0)
    max_tokens: int = Field(32768, ge=1)
    chars_per_token: float = Field(4.0, gt=0, description="Estimate when completion_tokens is null.")
    language_mixing: bool = Field(True, description="Drop traces with letters of a foreign script.")
    max_foreign_letter_share: float = Field(0.01, ge=0, le=1)
    code_block: bool = Field(True, description="Drop fenced code in the reasoning of non-code problems.")
    long_paragraph: bool = Field(True, description="Drop reasoning with an overlong prose paragraph.")
    max_paragraph_chars: int = Field(3000, ge=1)
    repetition: bool = Field(True, description="Drop degenerate repetition.")
    repetition_ngram: int = Field(10, ge=1, le=32)
    max_repeated_ngram_share: float = Field(0.2, ge=0, le=1)
    boxed_conflict: bool = Field(True, description="Drop content with different \\boxed{} answers.")


def _text(row: Row, key: str) -> str:
    return row.get(key) or ""


def truncated(row: Row, cfg: ReadabilityConfig) -> str | None:
    if row.get("finish_reason") == "length":
        return "truncated: finish_reason=length"
    return None


def _blank(text: str) -> bool:
    return not text or text.isspace()  # `not text.strip()` without copying the text


def think_tags(row: Row, cfg: ReadabilityConfig) -> str | None:
    completion, reasoning, content = row.get("completion"), _text(row, "reasoning"), row.get("content")
    # The usual case: the completion is exactly `<think>\n{reasoning}\n</think>\n\n{content}`
    # (as `distill generate` writes it) and neither part holds a tag: one <think>, one </think>
    # in order. Two scans of the parts instead of four of the completion.
    if (
        completion is not None
        and content is not None
        and len(completion) == len(reasoning) + len(content) + _FRAME
        and completion == assistant_text(reasoning, content)
        and "think>" not in reasoning
        and "think>" not in content
    ):
        return "think_missing: empty reasoning" if _blank(reasoning) else None
    return _counted_think_tags(row)


def _counted_think_tags(row: Row) -> str | None:
    """`think_tags` for any completion: the tags counted and located."""
    completion, reasoning, content = row.get("completion"), _text(row, "reasoning"), row.get("content")
    opens = closes = 0
    if completion is not None:
        opens, closes = completion.count("<think>"), completion.count("</think>")
    # No tag at all but both parts present: the server split the reasoning out (reasoning_content).
    if completion is not None and not (
        opens == closes == 0 and not _blank(reasoning) and content is not None
    ):
        if closes == 0 and opens == 0 and _blank(reasoning):
            return "think_missing: no <think> block in the completion"
        if closes == 0:
            return "think_unclosed: </think> never closes the reasoning"
        if closes > 1 or opens > 1:
            return f"think_extra: {opens} <think> and {closes} </think> tags in the completion"
        if opens == 1 and completion.index("<think>") > completion.index("</think>"):
            return "think_extra: <think> after </think>"
    for key in ("reasoning", "content"):
        text = _text(row, key)
        if "think>" in text and ("<think>" in text or "</think>" in text):  # one scan when clean
            return f"think_extra: think tag inside the {key}"
    if _blank(reasoning):
        return "think_missing: empty reasoning"
    return None


def empty_answer(row: Row, cfg: ReadabilityConfig) -> str | None:
    if row.get("content") is None:
        return "empty_answer: no content after </think>"
    if _blank(row["content"]):
        return "empty_answer: blank content"
    return None


def length_bounds(row: Row, cfg: ReadabilityConfig) -> str | None:
    tokens, how = row.get("completion_tokens"), ""
    if tokens is None:
        chars = (
            len(row["completion"])
            if row.get("completion")
            else len(_text(row, "reasoning") + _text(row, "content"))
        )
        tokens, how = round(chars / cfg.chars_per_token), " (estimated)"
    if tokens < cfg.min_tokens:
        return f"too_short: {tokens} tokens{how} < {cfg.min_tokens}"
    if tokens > cfg.max_tokens:
        return f"too_long: {tokens} tokens{how} > {cfg.max_tokens}"
    return None


# (first code point, script) sorted; a letter takes the script of the last start <= it.
_SCRIPT_STARTS = [
    (0x0000, "Latin"), (0x02B0, "Common"), (0x0370, "Greek"), (0x0400, "Cyrillic"), (0x0530, "Armenian"),
    (0x0590, "Hebrew"), (0x0600, "Arabic"), (0x0700, "Other"), (0x0750, "Arabic"), (0x0780, "Other"),
    (0x08A0, "Arabic"), (0x0900, "Indic"), (0x0E00, "Thai"), (0x0E80, "Other"), (0x10A0, "Georgian"),
    (0x1100, "Hangul"), (0x1200, "Other"), (0x1C80, "Cyrillic"), (0x1C90, "Other"), (0x1D00, "Latin"),
    (0x1DC0, "Other"), (0x1E00, "Latin"), (0x1F00, "Greek"), (0x2000, "Common"), (0x2C00, "Other"),
    (0x2C60, "Latin"), (0x2C80, "Other"), (0x2DE0, "Cyrillic"), (0x2E00, "Common"), (0x2E80, "CJK"),
    (0x3130, "Hangul"), (0x3190, "CJK"), (0xA000, "Other"), (0xA640, "Cyrillic"), (0xA6A0, "Other"),
    (0xA720, "Latin"), (0xA800, "Other"), (0xAB30, "Latin"), (0xAB70, "Other"), (0xAC00, "Hangul"),
    (0xD7B0, "Other"), (0xF900, "CJK"), (0xFB00, "Latin"), (0xFB1D, "Hebrew"), (0xFB50, "Arabic"),
    (0xFE00, "Common"), (0xFE70, "Arabic"), (0xFF00, "Latin"), (0xFF66, "CJK"), (0xFFA0, "Hangul"),
    (0xFFE0, "Common"), (0x10000, "Other"), (0x1D400, "Common"), (0x1D800, "Other"), (0x20000, "CJK"),
    (0x40000, "Other"),
]  # fmt: skip
_STARTS = [start for start, _ in _SCRIPT_STARTS]
_NEUTRAL = frozenset({"Greek", "Common"})
_MAIN_SCRIPT_SHARE = 0.1  # Latin letters in a prompt are often formulas: 10% of another script wins
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASCII_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))
_ASCII_LETTER_TABLE = bytes(int(b in _ASCII_LETTERS) for b in range(256))  # byte -> 1 for a letter


@lru_cache(maxsize=1 << 16)
def _script(char: str) -> str | None:
    """The script of a letter, None for anything that is not a letter."""
    if not unicodedata.category(char).startswith("L"):
        return None
    return _SCRIPT_STARTS[bisect_right(_STARTS, ord(char)) - 1][1]


def script_letters(text: str) -> Counter[str]:
    """Letters per script. ASCII letters are counted in C; only non-ASCII characters in Python."""
    counts: Counter[str] = Counter()
    data = text.encode("utf-8")
    counts["Latin"] = np.count_nonzero(np.frombuffer(data.translate(_ASCII_LETTER_TABLE), dtype=np.bool_))
    if len(data) == len(text):  # pure ASCII: no other script
        return counts
    for char, n in Counter(_NON_ASCII.findall(text)).items():
        if (script := _script(char)) is not None:
            counts[script] += n
    return counts


def language_mixing(row: Row, cfg: ReadabilityConfig) -> str | None:
    if _text(row, "reasoning").isascii() and _text(row, "content").isascii():
        return None  # ASCII letters are Latin, allowed with any prompt (`str.isascii` is O(1))
    prompt = script_letters(_text(row, "prompt") or _text(row, "problem"))
    others = {s: n for s, n in prompt.items() if s not in _NEUTRAL and s != "Latin"}
    main = max(others, key=lambda s: others[s], default="Latin")
    if others.get(main, 0) < _MAIN_SCRIPT_SHARE * sum(n for s, n in prompt.items() if s not in _NEUTRAL):
        main = "Latin"
    allowed = _NEUTRAL | {main} | ({"Latin"} if main != "Latin" else set())
    counts = script_letters(_text(row, "reasoning") + "\n" + _text(row, "content"))
    total = sum(n for s, n in counts.items() if s not in _NEUTRAL)
    foreign = {s: n for s, n in counts.items() if s not in allowed and n}
    share = sum(foreign.values()) / total if total else 0.0
    if share > cfg.max_foreign_letter_share:
        worst = max(foreign, key=lambda s: foreign[s])
        return f"language_mixing: {share:.1%} of letters are foreign ({worst} in a {main} prompt)"
    return None


_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)


def code_block(row: Row, cfg: ReadabilityConfig) -> str | None:
    if row.get("domain") == "code":
        return None
    reasoning = _text(row, "reasoning")
    # `"`" in` is a memchr (~1 us on 20 KB); `"```" in` is 10x slower
    fences = len(_FENCE.findall(reasoning)) if "`" in reasoning and "```" in reasoning else 0
    if fences:
        return f"code_block: {fences} ``` fence line(s) in the reasoning of a {row.get('domain')} problem"
    return None


_NOT_PROSE = re.compile(
    r"\$\$.*?\$\$|\\\[.*?\\\]|\\begin\{([a-zA-Z]+\*?)\}.*?\\end\{\1\}|^[ \t]*```.*?^[ \t]*```",
    re.DOTALL | re.MULTILINE,
)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def _longest_paragraph(text: str) -> int:
    return max((len(p.strip()) for p in _BLANK_LINE.split(text)), default=0)


def _widest_gap(raw: bytes) -> int:
    """The most bytes between two consecutive occurrences of b"\n\n" (or an end)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    newline = data == 10
    at = np.flatnonzero(newline[:-1] & newline[1:])
    if at.size == 0:
        return len(raw)
    return int(max(at[0], len(raw) - at[-1] - 2, np.diff(at).max(initial=0) - 2))


def long_paragraph(row: Row, cfg: ReadabilityConfig) -> str | None:
    reasoning = _text(row, "reasoning")
    # A paragraph (stripped, so no "\n\n" inside) lies within one piece between "\n\n"s: when no
    # piece is too long, none is. Pieces measured in UTF-8 bytes (at least the characters) between
    # the positions of "\n\n" (overlapping ones too, so at most one short): no string copies.
    if len(reasoning) <= cfg.max_paragraph_chars or _widest_gap(utf8(reasoning)) < cfg.max_paragraph_chars:
        return None
    if _longest_paragraph(reasoning) <= cfg.max_paragraph_chars:
        return None  # removing display math and code can only shorten paragraphs
    longest = _longest_paragraph(_NOT_PROSE.sub("\n\n", reasoning))
    if longest > cfg.max_paragraph_chars:
        return f"long_paragraph: {longest} characters > {cfg.max_paragraph_chars} without a blank line"
    return None


def repeated_ngram_share(text: str, n: int = 10) -> float:
    """Share of word n-gram occurrences that repeat an earlier occurrence (0 = no repeats)."""
    words = word_hashes(text)
    if words.size <= n:  # at most one n-gram
        return 0.0
    # even n: from the (n/2)-grams, which MinHash reuses when they are its shingles
    grams = paired_ngram_hashes(words, n) if n % 2 == 0 else ngram_hashes(words, n).copy()
    grams.sort()  # a fresh array; distinct values counted on the sorted copy (np.unique is 10x slower)
    distinct = 1 + np.count_nonzero(grams[1:] != grams[:-1])
    return 1.0 - distinct / grams.size


def repetition(row: Row, cfg: ReadabilityConfig) -> str | None:
    share = repeated_ngram_share(_text(row, "reasoning"), cfg.repetition_ngram)
    if share > cfg.max_repeated_ngram_share:
        return f"repetition: {share:.1%} of word {cfg.repetition_ngram}-grams are repeats"
    return None


_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_NOISE = re.compile(r"\\left|\\right|\\[,;:! ]|\\displaystyle|\s|\$")
_BOX_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")


def boxed_answers(text: str) -> list[str]:
    """The contents of every `\\boxed{...}` (balanced braces) in order."""
    answers = []
    for match in _BOX.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            answers.append(text[match.end() : i - 1])
    return answers


def normalize_boxed(answer: str) -> str:
    answer = _BOX_TEXT.sub(r"\1", answer)
    answer = _BOX_NOISE.sub("", answer).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return answer.rstrip(".").lower()


def boxed_conflict(row: Row, cfg: ReadabilityConfig) -> str | None:
    distinct = list(dict.fromkeys(a for a in map(normalize_boxed, boxed_answers(_text(row, "content"))) if a))
    if len(distinct) > 1:
        shown = ", ".join(repr(a[:30]) for a in distinct[:3])
        return f"boxed_conflict: {len(distinct)} different \\boxed answers: {shown}"
    return None


Filter = Callable[[Row, ReadabilityConfig], "str | None"]
# The fixed order of `check_readability`; each filter's name is its config switch.
FILTERS: tuple[Filter, ...] = (
    truncated, think_tags, empty_answer, length_bounds, language_mixing,
    code_block, long_paragraph, repetition, boxed_conflict,
)  # fmt: skip
FILTER_NAMES: tuple[str, ...] = tuple(f.__name__ for f in FILTERS)
# filter name -> the reason codes it can return (the text before ":"), for per-reason counts.
REASON_CODES: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in FILTER_NAMES},
    "think_tags": ("think_missing", "think_unclosed", "think_extra"),
    "length_bounds": ("too_short", "too_long"),
}


def check_readability(row: Row, cfg: ReadabilityConfig | None = None) -> tuple[str, str] | None:
    """(filter_name, reason) of the first enabled filter that drops `row`, or None to keep it."""
    cfg = cfg or ReadabilityConfig()
    for name, check in zip(FILTER_NAMES, FILTERS, strict=True):
        if getattr(cfg, name) and (reason := check(row, cfg)) is not None:
            return name, reason
    return None
