"""Math verification (filter, eval, `distill verify`): a trace's final answer against the gold, with math-verify.

The rule is plain math-verify's (the reference, `reference_verdict`): the gold wrapped in `\\boxed{}`
unless it has delimiters, parsed with math-verify's defaults; the prediction parsed from the final
answer with boxed answers first, every box of it read; `verify(gold, prediction)`. The answer
format policy (`answer_format`) says what counts as an answer: `boxed` (the default; the R1 prompt
asks for `\\boxed{}`: a final answer without a box is `fail: no boxed answer`) or `lenient` (also
"The answer is 3", `#### 3`, the last number: math-verify's default extraction). The deliberate
differences from plain math-verify are listed in docs/filter.md (`\\fbox`, GSM8K's `####` golds,
traces cut off in their reasoning); `tests/verify/test_math_differential.py` holds the rest to it.

The parent finds each trace's answer text (`answers.py`), answers cheap cases itself (cache; a
single box holding the same plain number; an integer gold against a plain integer, fraction or
decimal) and sends the distinct (gold, answer text) pairs in chunks to long-lived worker
processes that run math-verify in their main thread. math-verify's own `signal.alarm` timeouts are off;
instead each worker arms a soft alarm per item and the parent enforces a hard per-item deadline:
a worker that overruns is SIGKILLed and replaced, its item gets `error: timeout`, and the rest of its
chunk is re-queued. Workers run under RLIMIT_AS, so a memory blow-up is `error: memory` (a MemoryError
reaching us), `error: crash` (the worker died) or, where math-verify's own `except Exception` swallows
the MemoryError, its "not equal" (fail) - never a host OOM. Any other dead worker: `error: crash`.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Iterable
from multiprocessing.connection import wait
from threading import Lock
from typing import Any, Literal

from pydantic import Field, model_validator

from distill.config import StrictModel
from distill.verify.answers import answer_text, gold_text, only_box
from distill.verify.math_fast import fast_verdict
from distill.verify.math_worker import AnswerFormat, Pair, pred_config, reference_verdict, worker_main
from distill.verify.verdict import Verdict

__all__ = ["MathVerifier", "MathVerifyConfig", "explain", "pred_config", "reference_verdict", "warm_up"]


class MathVerifyConfig(StrictModel):
    answer_format: AnswerFormat = Field(
        "boxed",
        description="What counts as a final answer: 'boxed' (a \\boxed{} in the answer, as the R1 prompt "
        "asks; without one: fail 'no boxed answer') or 'lenient' (also 'The answer is 3', 'A: 3', "
        "'#### 3', the last number: math-verify's default extraction).",
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="Worker processes running math-verify."
    )
    timeout_s: float = Field(
        5.0,
        gt=0,
        description="Hard deadline per (gold, answer) item; a worker past it is killed (error: timeout).",
    )
    soft_timeout_s: float | None = Field(
        None,
        ge=0,
        description="In-worker alarm that ends a slow item without killing the worker; below timeout_s. "
        "Null: 80% of timeout_s; 0: off (every overrun is then a kill).",
    )
    memory_mb: int | None = Field(
        2048, ge=256, description="Address-space cap (RLIMIT_AS) of each worker in MiB; null for none."
    )
    chunk_size: int = Field(64, ge=1, description="Items sent to a worker per round trip.")
    cache_size: int = Field(
        500_000, ge=0, description="Verdicts kept per (gold, answer) pair for the verifier's lifetime."
    )
    fast_path: bool = Field(
        True,
        description="Answer without math-verify where its verdict is certain: the same plain number "
        "(1,000 == 1000.0), or an integer gold against a plain integer, fraction or decimal "
        "(18 == \\frac{36}{2} != 18.5) or an integer with text (18 == 18 \\text{ dollars}).",
    )
    start_method: Literal["forkserver", "spawn"] = Field(
        "forkserver", description="How worker processes start (forkserver preloads math-verify once)."
    )

    @model_validator(mode="after")
    def _soft_below_hard(self) -> MathVerifyConfig:
        if self.soft_timeout_s and self.soft_timeout_s >= self.timeout_s:
            raise ValueError("soft_timeout_s must be below timeout_s")
        return self

    def soft_timeout(self) -> float:
        return 0.8 * self.timeout_s if self.soft_timeout_s is None else self.soft_timeout_s


def explain(gold: str, content: str, config: MathVerifyConfig | None = None) -> dict[str, Any]:
    """Why a (gold, final answer) pair gets its verdict, for `distill verify`: the verdict from
    `MathVerifier` (the code filter and eval run), what was read on each side and what math-verify
    parsed it to, and plain math-verify's own verdict beside it."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    config = (config or MathVerifyConfig()).model_copy(update={"workers": 1})
    with MathVerifier(config) as verifier:
        verdict = verifier.verify_many([{"answer": gold, "content": content}])[0]
    text = answer_text(content, None)
    gold_read = gold_text(gold)
    gold_parsed = parse(gold_read, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()])
    answer_parsed = parse(text, extraction_config=pred_config(config.answer_format)) if text else []
    reference = reference_verdict(gold, content, config.answer_format)
    return {
        "status": verdict.status,
        "reason": verdict.reason,
        "answer_format": config.answer_format,
        "gold": gold,
        "gold read as": gold_read,
        "gold parsed to": [str(x) for x in gold_parsed] or "(nothing: unparsable)",
        "answer text": text,
        "boxes in the answer": (text or "").count("\\boxed"),
        "answer parsed to": [str(x) for x in answer_parsed] or "(nothing)",
        "plain math-verify": f"{reference[0]}: {reference[1]}",
    }


# --- parent side ------------------------------------------------------------------------------


class _Worker:
    def __init__(self, ctx: Any, config: MathVerifyConfig) -> None:
        soft = config.soft_timeout()
        self.progress = ctx.RawArray("d", [-1.0, 0.0])
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=worker_main,
            args=(child, self.progress, config.memory_mb, soft, config.answer_format),
            daemon=True,
        )
        self.process.start()
        child.close()
        self.chunk: list[int] | None = None  # item indices in flight
        self.served = False  # finished at least one chunk (a worker dying before that is a start failure)

    def kill(self) -> None:
        if self.process.is_alive():
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.join()
        self.conn.close()


def _context(config: MathVerifyConfig) -> Any:
    ctx = mp.get_context(config.start_method)
    if config.start_method == "forkserver":
        ctx.set_forkserver_preload(["math_verify", "latex2sympy2_extended", "distill.verify.math_worker"])
    return ctx


def warm_up(config: MathVerifyConfig) -> None:
    """Start the forkserver now, without waiting: it imports math-verify in the background
    (~0.5 s of CPU) while the caller goes on (imports, reading its input), and the first
    `verify_many` finds it ready. Nothing to do for the spawn start method."""
    _context(config)
    if config.start_method == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


class MathVerifier:
    """`verify_many(rows)` -> one `Verdict` per row, in order. A context manager; `close()` stops workers."""

    def __init__(self, config: MathVerifyConfig | None = None) -> None:
        self.config = config or MathVerifyConfig()
        self._ctx = _context(self.config)
        self._workers: list[_Worker] = []
        self._cache: dict[Pair, Verdict] = {}
        self._text_only: list[bool] = []  # of the pairs of the last `_run`
        self._lock = Lock()

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def close(self) -> None:
        with self._lock:
            for w in self._workers:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
            for w in self._workers:
                w.process.join(timeout=2)
                w.kill()
            self._workers = []

    def verify_many(self, rows: Iterable[dict]) -> list[Verdict]:
        with self._lock:
            return self._verify_many(rows)

    def _verify_many(self, rows: Iterable[dict]) -> list[Verdict]:
        """An answer with exactly one box is sent as that box alone (`\\boxed{X}`: math-verify reads
        the same from it as from the whole text, and equal boxes share one check); should the box
        alone parse to nothing, math-verify would look further in the text, so those rows are
        checked again with their whole text."""
        verdicts: list[Verdict | None] = []
        waiting: dict[Pair, list[int]] = {}
        whole: dict[int, Pair] = {}  # row -> (gold, its whole text), for rows sent as their box alone
        boxed = self.config.answer_format == "boxed"
        for row in rows:
            verdicts.append(None)
            text = answer_text(row.get("content"), row.get("reasoning"))
            if text is None:
                verdicts[-1] = Verdict.failed("no final answer")
                continue
            if boxed and "\\boxed" not in text:
                verdicts[-1] = Verdict.failed("no boxed answer")
                continue
            gold = gold_text(row.get("answer"))
            box = only_box(text)
            pair = (gold, text if box is None else f"\\boxed{{{box}}}")
            verdicts[-1] = self._cache.get(pair) or self._shortcut_text(row.get("answer"), box)
            if verdicts[-1] is None:
                waiting.setdefault(pair, []).append(len(verdicts) - 1)
                if pair[1] != text:
                    whole[len(verdicts) - 1] = (gold, text)
        text_only = self._check(waiting, verdicts)
        again: dict[Pair, list[int]] = {}
        for i, pair in whole.items():
            if i in text_only:
                again.setdefault(pair, []).append(i)
        self._check(again, verdicts)
        return verdicts  # type: ignore[return-value]

    def _check(self, waiting: dict[Pair, list[int]], verdicts: list[Verdict | None]) -> set[int]:
        """Verify the `waiting` pairs on the workers, cache them, and set their rows' verdicts;
        returns the rows whose answer parsed to text only (those pairs are not cached: sent as a
        box alone, their whole text is read next)."""
        if not waiting:
            return set()
        pairs = list(waiting)
        try:
            outcomes = self._run(pairs)
        except BaseException:  # Ctrl-C, workers dying at start: no chunk may outlive this call
            for w in self._workers:
                w.kill()
            self._workers = []
            raise
        text_only: set[int] = set()
        for k, (pair, verdict) in enumerate(zip(pairs, outcomes, strict=True)):
            if self._text_only[k]:
                text_only.update(waiting[pair])
            elif verdict.reason != "crash" and self.config.cache_size:
                if len(self._cache) >= self.config.cache_size:
                    self._cache.clear()
                self._cache[pair] = verdict
            for i in waiting[pair]:
                verdicts[i] = verdict
        return text_only

    def _shortcut_text(self, gold: str | None, box: str | None) -> Verdict | None:
        """`_shortcut` for a trace whose answer text has exactly one box (math-verify reads that box
        alone then), with the gold as written (after GSM8K's `####`); None where it cannot decide."""
        if box is None or not self.config.fast_path:
            return None
        gold = "" if gold is None else str(gold)
        if "####" in gold:
            gold = gold.rsplit("####", 1)[1]
        return self._shortcut((gold.strip(), box))

    def _shortcut(self, pair: Pair) -> Verdict | None:
        """`math_fast.fast_verdict` unless the fast path is off. `pair` is (the gold as written,
        the content of the answer's one box)."""
        return fast_verdict(pair) if self.config.fast_path else None

    def _run(self, pairs: list[Pair]) -> list[Verdict]:
        """Verify `pairs` on the pool; every overrun/crash costs only its own item."""
        n_workers = min(self.config.workers, len(pairs))
        while len(self._workers) < n_workers:
            self._workers.append(_Worker(self._ctx, self.config))
        size = max(1, min(self.config.chunk_size, -(-len(pairs) // (4 * n_workers))))
        by_gold = sorted(range(len(pairs)), key=lambda i: pairs[i][0])  # a gold's pairs share a chunk,
        todo = deque(by_gold[i : i + size] for i in range(0, len(pairs), size))  # so one worker parses it
        results: list[Verdict | None] = [None] * len(pairs)
        self._text_only = [False] * len(pairs)  # per pair: the answer parsed to text only
        start_failures = 0
        while todo or any(w.chunk is not None for w in self._workers):
            for k, w in enumerate(self._workers):
                if w.chunk is None and todo:
                    chunk = todo.popleft()
                    try:
                        w.conn.send([pairs[i] for i in chunk])
                        w.chunk = chunk
                    except OSError:  # died while idle (killed from outside): replace, retry the chunk
                        todo.appendleft(chunk)
                        w.kill()
                        self._workers[k] = _Worker(self._ctx, self.config)
            busy = [w for w in self._workers if w.chunk is not None]
            now = time.monotonic()
            deadlines = [w.progress[1] + self.config.timeout_s for w in busy if w.progress[0] >= 0]
            wake = max(0.0, min(deadlines, default=now + 0.25) - now) + 0.005
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=wake))
            now = time.monotonic()
            for k, w in enumerate(self._workers):
                if w.chunk is None:
                    continue
                if w.conn in ready:
                    try:
                        for i, (status, reason, text_only) in zip(w.chunk, w.conn.recv(), strict=True):
                            results[i] = Verdict(status, reason)  # type: ignore[arg-type]
                            self._text_only[i] = text_only
                        w.chunk, w.served, start_failures = None, True, 0
                        continue
                    except (EOFError, OSError):
                        pass  # died: handled below
                dead = w.process.sentinel in ready or not w.process.is_alive()
                overdue = w.progress[0] >= 0 and now - w.progress[1] > self.config.timeout_s
                if not (dead or overdue):
                    continue
                w.kill()
                at = int(w.progress[0])  # the item it was on (stable now that it is dead)
                if at < 0:
                    if not w.served:
                        start_failures += 1
                        if start_failures >= 3:
                            raise RuntimeError(
                                f"math-verify workers die at start (exit code {w.process.exitcode}); "
                                "is memory_mb too low?"
                            )
                    todo.appendleft(w.chunk)
                else:
                    results[w.chunk[at]] = Verdict.errored("crash" if dead and not overdue else "timeout")
                    rest = w.chunk[:at] + w.chunk[at + 1 :]
                    if rest:
                        todo.appendleft(rest)
                w.chunk = None
                self._workers[k] = _Worker(self._ctx, self.config)
        return results  # type: ignore[return-value]
