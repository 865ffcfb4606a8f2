"""Benchmark metrics as the R1 report computes them.

- pass@1: the mean correctness over the k samples of each problem, averaged over problems.
- pass@k: the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k), for n samples
  of which c are correct, averaged over problems.
- cons@k: majority vote over the extracted final answers of the k samples; the problem counts as
  solved when the most frequent answer is a correct one (ties: the answer seen first).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples, c correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i), numerically stable form of 1 - C(n-c,k)/C(n,k)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def consensus_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Whether the majority answer (None answers don't vote) is correct."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(a for a in answers if a is not None and votes[a] == top)
    return any(ok for a, ok in zip(answers, correct, strict=True) if a == winner)


def summarize(problems: list[dict], ks: Sequence[int]) -> dict[str, float | None]:
    """Metrics over problems, each {"correct": [bool] * n, "answers": [str | None] * n}."""
    if not problems:
        return {}
    n = min(len(p["correct"]) for p in problems)
    out: dict[str, float | None] = {
        "pass@1": float(np.mean([np.mean(p["correct"]) for p in problems])),
    }
    for k in sorted(set(ks)):
        if 1 < k <= n:
            out[f"pass@{k}"] = float(
                np.mean([pass_at_k(len(p["correct"]), sum(p["correct"]), k) for p in problems])
            )
    if all(p.get("answers") is not None for p in problems):
        out[f"cons@{n}"] = float(np.mean([consensus_correct(p["answers"], p["correct"]) for p in problems]))
    return out
