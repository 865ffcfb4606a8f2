"""Per-row work of the filter's first pass that needs no other row: readability verdicts, the
survivor-preference length, exact-dedup digests and MinHash signatures. What the feature workers
run: `features` on rows sent to them (a JSONL input), `file_features` on rows they read from a
Parquet input themselves (the texts never travel through a pipe). Pure functions over plain data,
picklable by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill.filter.dedup import DedupConfig, exact_digest, minhash_signature
from distill.filter.read import BULK_TEXT, DEFERRED_TEXT, READ_BATCH_ROWS
from distill.filter.readability import ReadabilityConfig, check_readability
from distill.verify.answers import REASONING_TAIL_CHARS

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


def file_features(
    path: Path,
    idx: list[int],
    readability: ReadabilityConfig,
    dedup: DedupConfig,
    tails: tuple[int, ...] = (),
) -> dict[str, Any]:
    """`features` of rows `idx` (ascending) of a valid Parquet trace file, read here (in a worker
    process: the texts never travel through a pipe), a batch of READ_BATCH_ROWS rows at a time: a
    few MB of text in memory instead of the whole file's, twice (Arrow and Python). Also whether a
    row's (deferred) completion is empty (`empty_required`), and the end of the reasoning of the
    rows `tails` (their math verification falls back to it)."""
    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    columns = [c for c in FEATURE_FIELDS if c in names]
    wanted, tail_set = np.asarray(idx, dtype=np.int64), set(tails)
    parts, empty, tail_text = [], False, {}
    start = 0
    for batch in file.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns, use_threads=False):
        stop = start + batch.num_rows
        # required: no completion may be empty (nulls are ruled out already)
        empty = empty or bool(pc.any(pc.equal(pc.binary_length(batch.column(DEFERRED_TEXT)), 0)).as_py())
        for i in tail_set.intersection(range(start, stop)):  # a file may lack the (nullable) column
            text = batch.column(BULK_TEXT)[i - start].as_py() if BULK_TEXT in columns else None
            tail_text[i] = (text or "")[-REASONING_TAIL_CHARS:]
        local = wanted[(wanted >= start) & (wanted < stop)] - start
        if local.size:
            parts.append(features(batch.take(pa.array(local)).to_pylist(), readability, dedup))
        start = stop
    out = {
        "checks": [c for p in parts for c in p["checks"]],
        "lengths": [n for p in parts for n in p["lengths"]],
        "digests": [d for p in parts for d in p["digests"]],
        "signatures": np.concatenate([p["signatures"] for p in parts])
        if parts
        else np.zeros((0, dedup.num_perm), np.uint32),
        "empty_required": empty,
        "tails": tail_text,
    }
    return out
