"""Final answers of teacher traces and gold answers, as the math verifier hands them to math-verify.

What is checked (`answer_text`): the trace's final answer, i.e. `content`, the text after
`</think>`, whole (math-verify reads every box in it: `\\boxed{1}, \\boxed{2}` is the set {1, 2});
for a trace cut off inside its reasoning (no content), the last box in the reasoning's last 2,000
characters. `\\fbox{}` counts as `\\boxed{}` (math-verify reads only `\\boxed`). The gold
(`gold_text`): GSM8K's worked solutions reduced to the text after `####`, then wrapped in
`\\boxed{}` unless it already has `\\boxed{}` or `$...$` delimiters: math-verify's LaTeX
extraction needs an anchor, and a bare gold is otherwise unparsable (`\\dfrac{207}{64}`) or cut
apart (`(\\frac{2}{3},1)\\cup(7,\\infty)` read as 2/3).

`extract_final_answer` (one string: the last box, or the conventions of a non-boxed reply) is what
eval's majority vote and `distill verify` show; it does not decide verdicts.

Traces are 8-30 KB; every search here is a `str.rfind`/`str.find` (C speed) or a scan of a short
tail, so extraction costs microseconds per row and can run in the parent process.
"""

from __future__ import annotations

import re

BOX_COMMANDS = ("\\boxed", "\\fbox")
MAX_ANSWER_CHARS = 1000  # a "final answer" longer than this is not one
REASONING_TAIL_CHARS = 2000  # where to look in the reasoning when the content is missing
CONTENT_TAIL_CHARS = 600  # where to look for the non-boxed conventions

_ANSWER_PHRASES = ("final answer is", "final answer:")
_STRIP_CHARS = " \t\r\n.$*:;,"


def _brace_end(text: str, open_at: int) -> int:
    """Index of the `}` closing the `{` at `open_at`, or -1 (unbalanced or too long)."""
    depth, i = 0, open_at
    limit = min(len(text), open_at + MAX_ANSWER_CHARS + 2)
    while i < limit:
        o, c = text.find("{", i, limit), text.find("}", i, limit)
        if c < 0:
            return -1
        if 0 <= o < c:
            depth, i = depth + 1, o + 1
        else:
            depth, i = depth - 1, c + 1
            if depth == 0:
                return c
    return -1


def _box_at(text: str, at: int, command: str) -> str | None:
    """The argument of the box command starting at `at`: `\\boxed{...}` or `\\boxed 5`."""
    j = at + len(command)
    if text.startswith("{", j):
        end = _brace_end(text, j)
        return text[j + 1 : end].strip() if end >= 0 else None
    if text.startswith(" ", j):  # `\boxed 5` (TeX takes the next token)
        token = text[j:].lstrip(" ").split(None, 1)
        return token[0].split("$", 1)[0] if token else None
    return None  # `\boxedsomething`: another macro


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{}`/`\\fbox{}` with balanced braces and a non-empty argument."""
    ends = dict.fromkeys(BOX_COMMANDS, len(text))
    while True:
        found = [(text.rfind(cmd, 0, ends[cmd]), cmd) for cmd in BOX_COMMANDS]
        at, cmd = max(found)
        if at < 0:
            return None
        answer = _box_at(text, at, cmd)
        if answer:
            return answer
        ends[cmd] = at


def _clean(answer: str) -> str | None:
    answer = answer.strip(_STRIP_CHARS)
    if answer.startswith("\\(") and answer.endswith("\\)"):
        answer = answer[2:-2].strip(_STRIP_CHARS)
    return answer if 0 < len(answer) <= MAX_ANSWER_CHARS else None


def _after_marker(tail: str, lowered: str, marker: str) -> tuple[int, str | None]:
    at = lowered.rfind(marker)
    if at < 0:
        return -1, None
    line = tail[at + len(marker) :].split("\n", 1)[0]
    if not line.strip() and marker == "####":
        line = tail[at + len(marker) :].lstrip().split("\n", 1)[0]
    return at, _clean(line)


def _bold_at_end(tail: str) -> tuple[int, str | None]:
    """`... **73**` (optionally followed by punctuation) at the very end of the text."""
    stripped = tail.rstrip(" \t\r\n.!")
    if not stripped.endswith("**"):
        return -1, None
    start = stripped.rfind("**", 0, len(stripped) - 2)
    if start < 0:
        return -1, None
    inner = stripped[start + 2 : -2]
    for prefix in ("final answer:", "answer:", "final answer", "answer"):
        if inner.lower().startswith(prefix):
            inner = inner[len(prefix) :]
            break
    return start, _clean(inner)


def extract_final_answer(content: str | None, reasoning: str | None) -> str | None:
    """The final answer of a trace, or None.

    In `content`: the last balanced `\\boxed{}`/`\\fbox{}`; else, in its last 600 characters, the
    latest of `#### X`, `final answer is X` / `final answer: X` and a bold `**X**` ending the text.
    When `content` is missing or blank (the trace was cut off inside the thinking), the last box in
    the last 2000 characters of `reasoning`.
    """
    if content and content.strip():
        boxed = last_boxed(content)
        if boxed:
            return boxed
        tail = content[-CONTENT_TAIL_CHARS:]
        lowered = tail.lower()
        candidates = [_after_marker(tail, lowered, "####"), _bold_at_end(tail)]
        candidates += [_after_marker(tail, lowered, phrase) for phrase in _ANSWER_PHRASES]
        found = [c for c in candidates if c[1]]
        return max(found, key=lambda c: c[0])[1] if found else None
    if reasoning:
        return last_boxed(reasoning[-REASONING_TAIL_CHARS:])
    return None


def answer_text(content: str | None, reasoning: str | None) -> str | None:
    """The text math-verify reads for a trace's answer (see the module docstring), or None."""
    if content and content.strip():
        return content.replace("\\fbox", "\\boxed") if "\\fbox" in content else content
    if reasoning:
        boxed = last_boxed(reasoning[-REASONING_TAIL_CHARS:])
        return f"\\boxed{{{boxed}}}" if boxed else None
    return None


def only_box(text: str) -> str | None:
    """The content of the one box of `text` when it has exactly one, else None: math-verify then
    reads that box alone (checked against it in the differential test)."""
    if text.count("\\boxed") != 1 or "\\boxed{" not in text:
        return None
    return last_boxed(text)


def has_delimiters(gold: str) -> bool:
    """Whether a gold already carries what math-verify's extraction anchors on: a `\\boxed{}`, or a
    pair of unescaped `$`."""
    return "\\boxed" in gold or gold.replace("\\$", "").count("$") >= 2


def gold_text(gold: str | None) -> str:
    """The gold as math-verify parses it: after GSM8K's `####`, stripped, wrapped in `\\boxed{}`
    unless it has delimiters. An empty gold stays empty."""
    gold = "" if gold is None else str(gold)
    if "####" in gold:  # a whole GSM8K solution: its final answer follows `#### `
        gold = gold.rsplit("####", 1)[1]
    gold = gold.strip()
    if not gold or has_delimiters(gold):
        return gold
    return f"\\boxed{{{gold}}}"


_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def vote_answer(content: str | None, reasoning: str | None, answer_format: str = "boxed") -> str | None:
    """The answer a majority vote counts (eval's cons@k), normalised: `extract_final_answer`'s, and
    under the lenient policy, when it finds none, the last number of the final answer (what
    math-verify's default extraction falls back to). None when there is nothing to count."""
    answer = extract_final_answer(content, reasoning)
    if answer is None and answer_format == "lenient" and content:
        numbers = _LAST_NUMBER.findall(content[-CONTENT_TAIL_CHARS:])
        answer = numbers[-1].rstrip(",") if numbers else None
    if answer is None:
        return None
    return number_key(answer) or " ".join(answer.replace("$", "").split())


# --- cheap equality (a PASS short-cut only) --------------------------------------------------

_NUMBER = re.compile(r"(-?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")
_DROP = ("\\$", "$", "{,}")


def number_key(text: str) -> str | None:
    """A canonical string for a plain decimal number (`$1,000.50$` -> `1000.5`), else None.

    Deliberately narrow, so that equal keys never disagree with math-verify (checked in the tests):
    only `1,000`-style groups of three count as thousands separators (math-verify reads `1,2` as 1.2
    in a gold and as the set {1, 2} in a prediction); inner spaces (`1 000`, `1\\,000`) and `\\text{}`
    disqualify (math-verify reads neither `1 000` nor, against a `18.0` gold, `\\text{18}` as equal).
    """
    if len(text) > 40:
        return None
    s = text.strip()
    for junk in _DROP:
        s = s.replace(junk, "")
    m = _NUMBER.fullmatch(s.strip())
    if m is None:
        return None
    sign, whole, frac = m.group(1), m.group(2).replace(",", "").lstrip("0") or "0", (m.group(3) or "")
    frac = frac.rstrip("0")
    if whole == "0" and not frac:
        sign = ""
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"
