"""Benchmark metrics as the R1 report computes them.

- pass@1: the mean correctness over the k samples of each problem, averaged over problems.
- pass@k: the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k), for n samples
  of which c are correct, averaged over problems.
- cons@k: majority vote over the extracted final answers of the k samples; the problem counts as
  solved when the most frequent answer is a correct one (ties: the answer seen first).

And how sure a pass@1 is: a 95% interval over problems, alone or paired between two models
(below).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

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


# --- uncertainty ---------------------------------------------------------------------------------
#
# pass@1 is a mean over problems of each problem's mean correctness (over its k samples), so its
# uncertainty comes from which problems the benchmark happens to hold. The 95% interval is the
# normal approximation: mean ± 1.96 · SE, SE = sample standard deviation (ddof=1) of the
# per-problem means / sqrt(number of problems). A difference between two models on the same
# problems is paired: the same interval over the per-problem differences (B − A), which removes
# the spread in problem difficulty both models share. `method="bootstrap"` gives a seeded
# percentile bootstrap instead (resampling problems); the reports use the normal approximation.
# With few problems, or a mean near 0 or 1, either is only approximate; with one problem there
# is no interval (None).

CONFIDENCE = 0.95
RESAMPLES = 10_000
INTERVAL_METHOD = "normal"
INTERVAL_NOTE = "normal approximation: mean ± 1.96 SE over problems (SE of per-problem mean correctness)"


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def bootstrap_means(values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of `resamples` resamples (with replacement) of `values`, from a seeded generator."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    step = max(1, 2_000_000 // max(1, len(x)))  # bounded memory: resample in blocks
    for start in range(0, resamples, step):
        m = min(step, resamples - start)
        out[start : start + m] = x[rng.integers(0, len(x), size=(m, len(x)))].mean(axis=1)
    return out


def mean_interval(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    method: str = INTERVAL_METHOD,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """{"mean", "lo", "hi", "se", "n", "confidence", "method"} for the mean of `values`.

    method "normal": mean ± z·SE with SE = std(ddof=1)/sqrt(n); "bootstrap": the percentile
    interval of `resamples` seeded resampled means (se: their standard deviation). lo/hi/se are
    None for fewer than 2 values; mean is None for none."""
    if method not in ("normal", "bootstrap"):
        raise ValueError(f"unknown interval method {method!r} (normal or bootstrap)")
    x = np.asarray(values, dtype=float)
    n = len(x)
    out: dict[str, Any] = {
        "mean": float(x.mean()) if n else None,
        "lo": None,
        "hi": None,
        "se": None,
        "n": n,
        "confidence": confidence,
        "method": method,
    }
    if n < 2:
        return out
    if method == "normal":
        se = float(x.std(ddof=1) / math.sqrt(n))
        half = _z(confidence) * se
        out.update(lo=out["mean"] - half, hi=out["mean"] + half, se=se)
    else:
        means = bootstrap_means(x, resamples, seed)
        lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
        out.update(lo=float(lo), hi=float(hi), se=float(means.std(ddof=1)), resamples=resamples, seed=seed)
    return out


def problem_means(bench: dict[str, Any]) -> dict[str, float]:
    """Per-problem mean correctness {problem id: correct samples / samples} of one benchmark's
    results (`results["benchmarks"][name]`); problems without samples are left out."""
    out: dict[str, float] = {}
    for p in bench.get("problems") or []:
        samples = p.get("samples") or []
        correct = p.get("correct")
        if isinstance(correct, list):
            samples, correct = correct, sum(map(bool, correct))
        if samples:
            out[str(p["id"])] = correct / len(samples)
    return out


def pass1_interval(bench: dict[str, Any], confidence: float = CONFIDENCE, **kw: Any) -> dict[str, Any] | None:
    """The pass@1 interval of one benchmark's results: stored by `distill eval`, else computed
    from its per-problem records (older results files); None without either. The normal
    interval of a proportion is clipped to [0, 1]."""
    stored = (bench.get("intervals") or {}).get("pass@1")
    if stored is not None and not kw and stored.get("confidence") == confidence:
        return stored
    means = problem_means(bench)
    if not means:
        return None
    ci = mean_interval(list(means.values()), confidence, **kw)
    if ci["lo"] is not None:
        ci.update(lo=max(0.0, ci["lo"]), hi=min(1.0, ci["hi"]))
    return ci


def paired_difference(
    results_a: dict[str, Any],
    results_b: dict[str, Any],
    benchmark: str,
    confidence: float = CONFIDENCE,
    method: str = INTERVAL_METHOD,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """pass@1 of B − A on `benchmark` over the problems both results hold (matched by id), with a
    paired interval over the per-problem differences of mean correctness.

    Returns {"benchmark", "diff", "lo", "hi", "se", "excludes_zero", "n_problems", "only_a",
    "only_b", "confidence", "method", "same_file", "reason"}: n_problems counts the shared problems,
    only_a/only_b those in one side only (left out of diff and interval, never silently). diff is
    None (and reason says why) when a side lacks the benchmark or its per-problem records, or no
    problem is shared; lo/hi/excludes_zero are None with fewer than 2 shared problems."""
    out: dict[str, Any] = {
        "benchmark": benchmark,
        "diff": None,
        "lo": None,
        "hi": None,
        "se": None,
        "excludes_zero": None,
        "n_problems": 0,
        "only_a": 0,
        "only_b": 0,
        "confidence": confidence,
        "method": method,
        "same_file": None,
        "reason": None,
    }
    bench_a = results_a.get("benchmarks", {}).get(benchmark)
    bench_b = results_b.get("benchmarks", {}).get(benchmark)
    if bench_a is None or bench_b is None:
        side = "A" if bench_a is None else "B"
        return out | {"reason": f"{benchmark} is not in {side}"}
    if bench_a.get("sha256") and bench_b.get("sha256"):
        out["same_file"] = bench_a["sha256"] == bench_b["sha256"]
    means_a, means_b = problem_means(bench_a), problem_means(bench_b)
    if not means_a or not means_b:
        side = "A" if not means_a else "B"
        return out | {"reason": f"{side} has no per-problem records for {benchmark}"}
    shared = [i for i in means_a if i in means_b]
    out.update(n_problems=len(shared), only_a=len(means_a) - len(shared), only_b=len(means_b) - len(shared))
    if not shared:
        return out | {"reason": "no problem id in both"}
    ci = mean_interval(
        [means_b[i] - means_a[i] for i in shared], confidence, method, resamples=resamples, seed=seed
    )
    out.update(diff=ci["mean"], lo=ci["lo"], hi=ci["hi"], se=ci["se"])
    if ci["lo"] is not None:
        out["excludes_zero"] = bool(ci["lo"] > 0 or ci["hi"] < 0)
    else:
        out["reason"] = "one shared problem: no interval"
    if method == "bootstrap":
        out.update(resamples=resamples, seed=seed)
    return out
