"""The trace format: R1-style `<think>` reasoning followed by the answer.

One home for the tags, for splitting a completion into reasoning and final answer, and for the
assistant turn an SFT row trains on: engines, generate, filter, verify and train all import it.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def ends_with_think(rendered: str) -> bool:
    """Whether a rendered chat prompt already opens the reasoning (R1-style templates do)."""
    return rendered.rstrip().endswith(THINK_OPEN)


@dataclass(frozen=True, slots=True)
class Split:
    reasoning: str | None  # inside <think>...</think>; None when the output has no reasoning
    content: str | None  # after </think>; None when the reasoning never closed (truncated)


def split_reasoning(text: str, think_opened: bool) -> Split:
    """Split a completion into reasoning and final answer.

    `think_opened`: the prompt ended with `<think>` (prefilled), so the text starts inside the
    reasoning. Handles a missing opening tag (templates that hide it), a missing closing tag
    (truncated: content is None) and tag text inside the answer (only the first `</think>` closes).
    """
    body = text
    stripped = body.lstrip()
    opened = think_opened
    if stripped.startswith(THINK_OPEN):
        body, opened = stripped[len(THINK_OPEN) :], True
    elif not opened:
        start = body.find(THINK_OPEN)
        close = body.find(THINK_CLOSE)
        if start != -1 and (close == -1 or start < close):
            body, opened = body[start + len(THINK_OPEN) :], True
    reasoning, sep, content = body.partition(THINK_CLOSE)
    if sep:
        return Split(reasoning.strip("\n").strip(), content.strip())
    if opened:
        return Split(reasoning.strip("\n").strip(), None)
    return Split(None, text.strip())


def assistant_text(reasoning: str | None, content: str | None) -> str:
    """The assistant turn an SFT row trains on: `<think>\\n{reasoning}\\n</think>\\n\\n{content}`,
    or the content alone for a trace without reasoning (`reasoning` None: a model answering
    without a chain of thought, R1's non-reasoning samples); an empty `<think>` block would teach
    the student to open and close one before every answer."""
    if reasoning is None:
        return content or ""
    return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{content or ''}"
