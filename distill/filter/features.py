"""Per-row work of the filter's first pass that needs no other row: readability verdicts, the
survivor-preference length, exact-dedup digests and MinHash signatures. Pure functions over plain
data, so chunks of rows run in worker processes."""

from __future__ import annotations

from typing import Any

import numpy as np

from distill.filter.dedup import DedupConfig, exact_digest, minhash_signature
from distill.filter.readability import ReadabilityConfig, check_readability

FEATURE_FIELDS = (
    "id",
    "problem",
    "domain",
    "reasoning",
    "content",
    "completion",
    "finish_reason",
    "completion_tokens",
)


def preference_length(row: dict[str, Any]) -> int:
    """Survivor preference: fewer tokens first (characters / 4 when the count is unknown)."""
    tokens = row.get("completion_tokens")
    return int(tokens) if tokens is not None else len(row.get("completion") or "") // 4


def features(
    rows: list[dict[str, Any]], readability: ReadabilityConfig, dedup: DedupConfig
) -> dict[str, Any]:
    """For each row: readability (filter, reason) or None, preference length, digest, signature."""
    checks, lengths, digests = [], [], []
    sigs = np.zeros((len(rows), dedup.num_perm), dtype=np.uint32)
    for i, row in enumerate(rows):
        checks.append(check_readability(row, readability))
        lengths.append(preference_length(row))
        text = row.get(dedup.field) or ""
        digests.append(exact_digest(text) if dedup.exact else b"")
        if dedup.near:
            sigs[i] = minhash_signature(text, dedup.ngram, dedup.num_perm, dedup.seed)
    return {"checks": checks, "lengths": lengths, "digests": digests, "signatures": sigs}
