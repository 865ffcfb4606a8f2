"""`work/`: the first pass's sealed shards, one per input file, and what the later passes read back.

A work shard holds every row of its input file (FILTERED_SCHEMA) with the first pass's verdict,
reject stage and reason, plus the plan's keys: the survivor-preference length (`_pref`), the
exact-dedup digest (`_digest`) and the MinHash signature (`_sig`). The work shard of a Parquet
input leaves the texts out (`WORK_KEYS_SCHEMA`): the output pass reads them again from the input
file, which costs less than compressing and reading them back. Each shard's manifest record keeps
what the input mapping did and the input's unusable rows, so that a resumed run still reports them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from distill.filter.config import FilterConfig
from distill.filter.plan import Keys
from distill.filter.read import read_input, read_parquet, read_present
from distill.schema import FILTERED_SCHEMA, TRACE_SCHEMA
from distill.shards import ShardStore, shard_name

WORK_EXTRA = [
    pa.field("_pref", pa.int64()),
    pa.field("_digest", pa.binary()),
    pa.field("_sig", pa.binary()),
]
WORK_SCHEMA = pa.schema([*FILTERED_SCHEMA, *WORK_EXTRA])
# The work shard of a Parquet input: no texts (pass 3 reads them from the input file again).
WORK_KEYS_SCHEMA = pa.schema(
    [
        TRACE_SCHEMA.field("id"),
        TRACE_SCHEMA.field("prompt_id"),
        *(FILTERED_SCHEMA.field(n) for n in ("verdict", "verdict_reason", "reject_stage", "reject_reason")),
        *WORK_EXTRA,
    ]
)


@dataclass(frozen=True)
class FilterRun:
    """One run of the filter stage, as its passes see it."""

    cfg: FilterConfig
    out: Path  # the output folder
    identity: dict[str, Any]  # what must not change between runs into `out`
    files: list[Path]  # the input files, in order: input file k -> work shard k
    work: ShardStore  # out/work
    pool: Executor  # the feature workers, which also write sft/ and rejects/
    log: Callable[[str], None]
    progress: Any = None  # a `distill.progress` progress display, or None


def binary_rows(values: np.ndarray) -> pa.ChunkedArray:
    """A (rows, k) array as binary values, one row's bytes each, built from buffers (no Python
    objects); in chunks of at most 2**20 rows so that int32 offsets never overflow."""
    width = values.shape[1] * values.itemsize
    pieces = []
    for start in range(0, values.shape[0], 1 << 20):
        part = np.ascontiguousarray(values[start : start + (1 << 20)])
        n = part.shape[0]
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(part.tobytes())]
        pieces.append(pa.Array.from_buffers(pa.binary(), n, buffers))
    return pa.chunked_array(pieces, pa.binary())


def ids_of_sealed(files: list[Path], work: ShardStore, todo: list[int]) -> dict[str, str]:
    """The row ids of the input files whose first pass a run before this one finished (resumed):
    a later file's copy of one of them is still a duplicate."""
    seen: dict[str, str] = {}
    pending = set(todo)
    for k in range(len(files)):
        if k not in pending:
            ids = read_parquet(work.root / shard_name(k, work.num_shards), ["id"]).column("id")
            for rid in ids.to_pylist():
                seen.setdefault(rid, files[k].name)
    return seen


def read_keys(work: ShardStore, files: list[Path], num_perm: int, problems: bool = False) -> Keys:
    """The work shards' small columns, concatenated; `problems`: also each prompt's problem (from
    the work shard when it holds the texts, else from the input file: a small column)."""
    keys = Keys()
    cols = ["id", "prompt_id", "verdict", "reject_stage", "reject_reason", "_pref", "_digest", "_sig"]
    sigs = []
    for k in range(len(files)):
        path = work.root / shard_name(k, work.num_shards)
        t = read_parquet(path, cols)
        if problems:
            prompt_ids = t.column("prompt_id").to_pylist()
            for pid, problem in zip(prompt_ids, _problems(path, files[k], t), strict=True):
                keys.problems.setdefault(pid, problem or "")
        keys.bounds.append((len(keys.ids), len(keys.ids) + t.num_rows))
        keys.ids += t.column("id").to_pylist()
        keys.prompts += t.column("prompt_id").to_pylist()
        keys.verdicts += t.column("verdict").to_pylist()
        keys.stage1 += t.column("reject_stage").to_pylist()
        keys.reasons1 += t.column("reject_reason").to_pylist()
        keys.lengths += t.column("_pref").to_pylist()
        keys.digests += t.column("_digest").to_pylist()
        sigs.append(b"".join(t.column("_sig").to_pylist()))
    keys.signatures = np.frombuffer(b"".join(sigs), dtype=np.uint32).reshape(len(keys.ids), num_perm)
    return keys


def _problems(work_path: Path, source: Path, keys: pa.Table) -> list[str | None]:
    """The `problem` of each row of a work shard: its own column when it holds the texts, else the
    input file's (its `problem` column alone when the rows match, else the file read as pass 3 does)."""
    table = read_present(work_path, ["problem"])
    if not table.num_columns:
        table = read_present(source, ["id", "problem"]) if source.suffix == ".parquet" else None
        if (
            table is None
            or table.column_names != ["id", "problem"]
            or not table.column("id").equals(keys.column("id"))
        ):
            table, _ = read_input(source)
    return table.column("problem").to_pylist()


def input_reject_rows(work: ShardStore, n: int) -> list[dict]:
    """The input rows that were not usable traces (for `rejects.jsonl`), over every input file
    (from the work manifest: also the files of an earlier run)."""
    return [r for k in range(n) for r in work.shards.get(shard_name(k, n), {}).get("input_reject_rows", [])]


def input_counts(work: ShardStore, n: int) -> dict[str, Any]:
    """What the input mapping did, over every input file (from the work manifest: also the files of
    an earlier run): derived fields -> rows, rows of files without a gold-answer column, and the golds
    math-verify could not parse -> rows (for the user to fix their data)."""
    derived: Counter[str] = Counter()
    bad_golds: Counter[str] = Counter()
    no_answer = 0
    for k in range(n):
        stats = work.shards.get(shard_name(k, n), {})
        derived.update(stats.get("derived", {}))
        bad_golds.update(stats.get("unparsable_golds", {}))
        no_answer += stats.get("no_answer_column", 0)
    order = {f.name: i for i, f in enumerate(TRACE_SCHEMA)}
    return {
        "derived": dict(sorted(derived.items(), key=lambda kv: order[kv[0]])),
        "no_answer_column": no_answer,
        "unparsable_golds": dict(sorted(bad_golds.items(), key=lambda kv: (-kv[1], kv[0]))),
    }
