"""Adaptive rejection sampling: spend the teacher's samples where they are needed.

Fixed sampling gives every prompt `n` samples: an easy prompt gets several correct traces when one
is kept, a hard one gets none. With `sampling.until_pass: K` and `sampling.max_samples: N`, a
prompt is sampled in rounds of `num_samples` (sample indices [r*n, (r+1)*n) in round r); each
round is verified as it returns, by the same `distill/verify` code the filter uses, and another
round is sent only while the prompt has fewer than K passing samples and fewer than N samples.

Verification runs on a thread of its own (math-verify's worker processes, the sandbox, the judge
behind it), so the engine never waits for it: the request iterator hands the engine the next
rounds as verification releases them, and fresh prompts in the meantime.

`Rounds` is the bookkeeping for both modes: with adaptive sampling off, a prompt is final when
its single request returns, and nothing is verified here.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

_STOP = object()


@dataclass(frozen=True)
class Policy:
    round_size: int
    until_pass: int | None = None  # None: fixed sampling, one round
    max_samples: int | None = None

    @property
    def adaptive(self) -> bool:
        return self.until_pass is not None

    @property
    def max_rounds(self) -> int:
        return 1 if not self.adaptive else self.max_samples // self.round_size


class Rounds:
    """Per prompt: samples, passes and verdicts so far; decides follow-up rounds.

    `submit` is called with each finished round (or, on resume, with what the journal holds);
    follow-up requests appear in `followups` and finished prompts in `finals`, both thread-safe
    queues (the verifier thread fills them; the request iterator and the main loop drain them).
    """

    def __init__(self, policy: Policy, verify_cfg: Any = None):
        self.policy = policy
        self.samples: dict[int, int] = defaultdict(int)
        self.passed: dict[int, int] = defaultdict(int)
        self.verdicts: dict[str, str] = {}  # sample id -> pass / fail / error
        self.followups: queue.Queue = queue.Queue()  # (shard, prompt, round)
        self.finals: queue.Queue = queue.Queue()  # (shard, prompt)
        self._open = 0
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self._inbox: queue.Queue = queue.Queue()
        self._thread = None
        if policy.adaptive:
            from distill.verify.dispatch import Verifiers

            self._verifiers = Verifiers(verify_cfg)
            self._thread = threading.Thread(target=self._loop, name="distill-verify", daemon=True)
            self._thread.start()

    # --- the prompts in play ---------------------------------------------------------------------

    def opened(self, count: int = 1) -> None:
        """`count` more prompts are in play (not final yet)."""
        with self._lock:
            self._open += count

    @property
    def open(self) -> int:
        with self._lock:
            return self._open

    def _final(self, shard: int, prompt: int) -> None:
        with self._lock:
            self._open -= 1
        self.finals.put((shard, prompt))

    # --- rounds ------------------------------------------------------------------------------------

    def submit(
        self, shard: int, prompt: int, rnd: int, rows: list[dict[str, Any]], more: bool = True
    ) -> None:
        """A round of a prompt is back (`rows`, possibly none). `more=False`: no further round
        whatever the verdicts (the request failed for good)."""
        if not self.policy.adaptive or not rows or not more:
            self.samples[prompt] += len(rows)
            self._final(shard, prompt)
            return
        self._inbox.put((shard, prompt, rnd, rows))

    def _loop(self) -> None:
        while (item := self._inbox.get()) is not _STOP:
            shard, prompt, rnd, rows = item
            try:
                verdicts = self._verifiers.verify(rows)
            except BaseException as exc:  # surfaced on the main thread (see `check`)
                self.error = exc
                verdicts = [None] * len(rows)
            self._decide(shard, prompt, rnd, rows, verdicts)

    def _decide(self, shard: int, prompt: int, rnd: int, rows, verdicts) -> None:
        for row, v in zip(rows, verdicts, strict=True):
            if v is not None:
                self.verdicts[row["id"]] = v.status
        self.samples[prompt] += len(rows)
        self.passed[prompt] += sum(1 for v in verdicts if v is not None and v.status == "pass")
        p = self.policy
        if self.error is None and self.passed[prompt] < p.until_pass and self.samples[prompt] < p.max_samples:
            self.followups.put((shard, prompt, rnd + 1))
        else:
            self._final(shard, prompt)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Verify what was submitted, then stop the thread and the verifiers."""
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join()
            self._verifiers.close()
            self._thread = None

    def abandon(self, grace: float = 5.0) -> None:
        """Stop without waiting for the rounds still queued (SIGTERM, an error): they are in the
        journal, and the next run verifies them again."""
        if self._thread is not None:
            while True:
                try:
                    self._inbox.get_nowait()
                except queue.Empty:
                    break
            self._inbox.put(_STOP)
            self._thread.join(grace)
            self._verifiers.close()
            self._thread = None

    # --- what goes into the rows -----------------------------------------------------------------

    def annotate(self, prompt: int, rows: list[dict[str, Any]]) -> None:
        """Adaptive runs: each row gets its prompt's sample count, passes, and its own verdict."""
        if not self.policy.adaptive:
            return
        for row in rows:
            row["prompt_samples"] = self.samples[prompt]
            row["prompt_passed"] = self.passed[prompt]
            row["generate_verdict"] = self.verdicts.get(row["id"])
