"""The math verifier's worker side: math-verify as the rule says (`reference_verdict` is the rule
itself, in one process), and the loop a worker process runs. The pool that starts, feeds and kills
these workers is `distill/verify/math.py`'s `MathVerifier`."""

from __future__ import annotations

import logging
import signal
import time
from itertools import product
from typing import Any, Literal

Pair = tuple[str, str]  # (gold as math-verify parses it, the answer text)
AnswerFormat = Literal["boxed", "lenient"]
Outcome = tuple[str, str | None]  # (status, reason)
# What a worker sends back per item: the outcome, and whether the answer parsed to text only (no
# expression: math-verify keeps the raw string as a fallback and, in a longer text, reads on).
Sent = tuple[str, str | None, bool]


class _SoftTimeout(BaseException):
    """Raised by the worker's alarm; a BaseException so math-verify's `except Exception` lets it out."""


class _Checker:
    """math-verify with the parsed gold and the parsed answer cached per string (worker side)."""

    CACHE_LIMIT = 20_000

    def __init__(self, answer_format: AnswerFormat = "boxed") -> None:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        self._parse, self._verify = parse, verify
        # Plain math-verify: its default extraction for the gold (which `gold_text` has anchored);
        # for the prediction boxed answers first, plus expressions ("the answer is 3") when lenient.
        self.gold_config = [LatexExtractionConfig(), ExprExtractionConfig()]
        self.pred_config = pred_config(answer_format)
        self.no_answer = "unparsable answer" if answer_format == "boxed" else "no answer found"
        self.golds: dict[str, list] = {}
        self.preds: dict[str, list] = {}

    def parse(self, text: str, config: list, cache: dict[str, list]) -> list:
        if (hit := cache.get(text)) is not None:
            return hit
        try:  # raise_on_error lets a MemoryError out; other errors are math-verify's "nothing parsed"
            parsed = self._parse(text, extraction_config=config, parsing_timeout=None, raise_on_error=True)
        except MemoryError:
            raise
        except Exception:
            parsed = []
        if len(cache) >= self.CACHE_LIMIT:
            cache.clear()
        cache[text] = parsed
        return parsed

    def check(self, gold: str, answer: str) -> Sent:
        gold_parsed = self.parse(gold, self.gold_config, self.golds)
        if not gold_parsed:
            return "error", "unparsable gold", False
        pred_parsed = self.parse(answer, self.pred_config, self.preds)
        if not pred_parsed:
            return "fail", self.no_answer, True
        text_only = all(isinstance(p, str) for p in pred_parsed)
        # verify(golds, preds) is any() over the product with errors counted as False; the same loop
        # here, pair by pair, so that a MemoryError is reported instead of read as "not equal".
        for g, p in product(gold_parsed, pred_parsed):
            try:
                if self._verify(g, p, timeout_seconds=None, raise_on_error=True):
                    return "pass", "verified", text_only
            except MemoryError:
                raise
            except Exception:
                continue
        return "fail", "wrong answer", text_only


def pred_config(answer_format: AnswerFormat) -> list:
    """math-verify's extraction config for a prediction under an answer format policy."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    boxed_first = LatexExtractionConfig(boxed_match_priority=0)
    return [boxed_first] if answer_format == "boxed" else [boxed_first, ExprExtractionConfig()]


def reference_verdict(gold: str, content: str, answer_format: AnswerFormat = "boxed") -> Outcome:
    """Plain math-verify, in this process and without any of the verifier's machinery: what
    `MathVerifier` must agree with (the differential test), documented differences aside.
    `content` is the trace's final answer (the text after `</think>`)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled": it is, on purpose
    gold = gold.strip()
    if not ("\\boxed" in gold or gold.replace("\\$", "").count("$") >= 2):
        gold = "\\boxed{" + gold + "}"
    gold_parsed = parse(
        gold, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=None
    )
    if not gold_parsed:
        return "error", "unparsable gold"
    if answer_format == "boxed" and "\\boxed" not in content:
        return "fail", "no boxed answer"
    pred_parsed = parse(content, extraction_config=pred_config(answer_format), parsing_timeout=None)
    if not pred_parsed:
        return "fail", "unparsable answer" if answer_format == "boxed" else "no answer found"
    if verify(gold_parsed, pred_parsed, timeout_seconds=None):
        return "pass", "verified"
    return "fail", "wrong answer"


def _on_alarm(signum: int, frame: Any) -> None:
    raise _SoftTimeout


def _next_chunk(conn: Any) -> list[Pair] | None:
    """The next chunk, or None to stop: asked to, or the parent is gone (killed: its end of the
    pipe closed), which is no error of this worker's to print."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def worker_main(
    conn: Any, progress: Any, memory_mb: int | None, soft_timeout_s: float | None, answer_format: AnswerFormat
) -> None:
    """Serve chunks of (gold, answer) pairs until None; `progress` = [item index or -1, start time]."""
    if memory_mb:
        limit = memory_mb * 2**20
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    signal.signal(signal.SIGALRM, _on_alarm)
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled" warnings
    checker = _Checker(answer_format)
    checker.check("\\boxed{1}", "\\boxed{1}")  # warm up the LaTeX parser
    while (chunk := _next_chunk(conn)) is not None:
        out: list[Sent] = []
        for i, (gold, answer) in enumerate(chunk):
            progress[1] = time.monotonic()
            progress[0] = i
            outcome: Sent | None = None
            try:
                try:
                    if soft_timeout_s:
                        signal.setitimer(signal.ITIMER_REAL, soft_timeout_s)
                    outcome = checker.check(gold, answer)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except _SoftTimeout:  # may also land just after the item finished: keep its outcome
                outcome = outcome or ("error", "timeout", False)
            except MemoryError:
                outcome = ("error", "memory", False)
            out.append(outcome)
        progress[0] = -1
        conn.send(out)
