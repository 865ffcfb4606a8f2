"""`work/`: the first pass's sealed shards, one per input file, and what the later passes read back.

A work shard holds every row of its input file (FILTERED_SCHEMA) with the first pass's verdict,
reject stage and reason, plus the plan's keys: the survivor-preference length (`_pref`), the
exact-dedup digest (`_digest`) and the MinHash signature (`_sig`). The work shard of a Parquet
input leaves the texts out (`WORK_KEYS_SCHEMA`): the output pass reads them again from the input
file, which costs less than compressing and reading them back. Each shard's manifest record keeps
what the input mapping did and the input's unusable rows, so that a resumed run still reports them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import UserError
from distill.filter.config import FilterConfig
from distill.filter.plan import Keys
from distill.filter.read import read_input, read_parquet, read_present
from distill.schema import FILTERED_SCHEMA, TRACE_SCHEMA
from distill.shards import ShardStore, shard_name, shard_ok, write_shard

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


def ids_of_sealed(files: list[Path], work: ShardStore, todo: list[int]) -> dict[str, int]:
    """The row ids of the input files before the last of `todo` whose first pass a run before this
    one finished (resumed, or another worker's), each with the index of the first such file: a
    later file's copy of one of them is still a duplicate."""
    seen: dict[str, int] = {}
    pending = set(todo)
    for k in range(max(todo, default=-1)):
        if k not in pending and work.is_sealed(k):
            ids = read_parquet(work.root / shard_name(k, work.num_shards), ["id"]).column("id")
            for rid in ids.to_pylist():
                seen.setdefault(rid, k)
    return seen


def read_keys(work: ShardStore, files: list[Path], num_perm: int, problems: bool = False) -> Keys:
    """The work shards' small columns, concatenated; `problems`: also each prompt's problem (from
    the work shard when it holds the texts, else from the input file: a small column).

    What grows with the rows (measured at 1M rows: docs/benchmarks.md): the signatures, one
    preallocated array filled from the shards' buffers (4 x num_perm bytes a row, no Python
    object nor a second copy), and the Python lists; equal prompt ids, verdicts, stages and
    reasons share one object (a prompt's samples, `pass`, `fail: wrong answer`, ...)."""
    keys = Keys()
    cols = ["id", "prompt_id", "verdict", "reject_stage", "reject_reason", "_pref", "_digest", "_sig"]
    paths = [work.root / shard_name(k, work.num_shards) for k in range(len(files))]
    keys.signatures = np.empty((sum(_rows_of(p) for p in paths), num_perm), np.uint32)
    shared: dict[Any, Any] = {}  # value -> the one object that stands for it
    for k, path in enumerate(paths):
        t = read_parquet(path, cols)
        if problems:
            prompt_ids = t.column("prompt_id").to_pylist()
            for pid, problem in zip(prompt_ids, _problems(path, files[k], t), strict=True):
                keys.problems.setdefault(pid, problem or "")
        start = len(keys.ids)
        keys.bounds.append((start, start + t.num_rows))
        keys.ids += t.column("id").to_pylist()
        for name, values in (
            ("prompt_id", keys.prompts),
            ("verdict", keys.verdicts),
            ("reject_stage", keys.stage1),
            ("reject_reason", keys.reasons1),
        ):
            values += [shared.setdefault(v, v) for v in t.column(name).to_pylist()]
        keys.lengths += t.column("_pref").to_pylist()
        keys.digests += t.column("_digest").to_pylist()
        for chunk in t.column("_sig").chunks:
            keys.signatures[start : start + len(chunk)] = _fixed_width_rows(chunk, num_perm)
            start += len(chunk)
    return keys


def _rows_of(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def _fixed_width_rows(chunk: pa.Array, num_perm: int) -> np.ndarray:
    """A binary array of `num_perm` uint32 values a row (`binary_rows`) as a (rows, num_perm) view
    of its data buffer, without a Python object per row."""
    if len(chunk) == 0:
        return np.empty((0, num_perm), np.uint32)
    wide = pa.types.is_large_binary(chunk.type)
    offsets = np.frombuffer(chunk.buffers()[1], np.int64 if wide else np.int32)
    offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1]
    width = 4 * num_perm
    if chunk.null_count or offsets[-1] - offsets[0] != width * len(chunk):
        raise ValueError(f"MinHash signatures of {num_perm} values expected in the work shard")
    data = np.frombuffer(chunk.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    return data.view(np.uint32).reshape(len(chunk), num_perm)


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


# --- a scaled-out first pass (`--num-workers W --worker-index I`, then `--merge`) -----------------


def load_work(out: Path, identity: dict[str, Any], files: list[Path]) -> ShardStore:
    """`--merge`'s view of `out/work`: every input file's work shard, sealed by the first-pass
    workers under this identity, read without writing or cleaning anything (a worker may still be
    running). A UserError names what is missing: which workers, which shards and input files, and
    the command that makes them; or the settings that differ from the workers'."""
    root = out / "work"
    store = ShardStore(root, identity, len(files))
    manifests = []
    for path in sorted((root / "manifests").glob("worker-*.json")):
        try:
            manifests.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # an unreadable manifest seals nothing
    if not manifests:
        raise UserError(
            f"{root}: no first pass to merge: run `distill filter INPUT -o {out} --num-workers W "
            "--worker-index I` for every I in [0, W) first (or leave out --merge to run it all here)"
        )
    for path, doc in manifests:
        if doc.get("identity") != identity:
            old = doc.get("identity") or {}
            diffs = [k for k in sorted(set(old) | set(identity)) if old.get(k) != identity.get(k)]
            raise UserError(
                f"{path}: that first-pass worker ran with another {' and '.join(diffs) or 'setting'} "
                "than this merge; run the merge with the workers' input and settings (recipe, flags), "
                "or rerun the workers into a new --output folder"
            )
    for _, doc in manifests:
        for name, rec in (doc.get("shards") or {}).items():
            if name not in store.shards and shard_ok(root / name, rec):
                store.shards[name] = rec
    missing = [k for k in range(len(files)) if shard_name(k, len(files)) not in store.shards]
    if missing:
        raise UserError(_missing_message(out, files, missing, [doc for _, doc in manifests]))
    return store


def _missing_message(out: Path, files: list[Path], missing: list[int], manifests: list[dict]) -> str:
    def listed(ks: list[int]) -> str:
        shown = ", ".join(f"{k} ({files[k].name})" for k in ks[:5])
        return shown + (f" and {len(ks) - 5} more" if len(ks) > 5 else "")

    head = f"{out / 'work'}: the first pass of {len(missing)} of {len(files)} input files is missing"
    counts = {doc.get("num_workers") for doc in manifests}
    if len(counts) != 1:  # workers of several W: by shard only
        return f"{head}: work shards {listed(missing)}; rerun the workers that own them"
    (w,) = counts
    started = {doc.get("worker_index") for doc in manifests}
    lines = []
    for i in sorted({k % w for k in missing}):
        ks = [k for k in missing if k % w == i]
        state = "did not finish" if i in started else "never ran (no manifest)"
        lines.append(
            f"  worker {i} of {w} {state}: work shards {listed(ks)}; "
            f"rerun it: distill filter INPUT -o {out} --num-workers {w} --worker-index {i}"
        )
    return head + ":\n" + "\n".join(lines)


def mark_repeated_ids(keys: Keys, work: ShardStore, files: list[Path]) -> int:
    """The `duplicate_id` input rejects over every input file, as one process's first pass marks
    them (`_FirstPass.mark_input_rejects`): a first-pass worker sees only its own files (and those
    sealed before it), so a row repeating an id of another worker's earlier file is marked here, in
    `keys` and in its work shard (rewritten and recorded in `work`'s manifest: the output pass
    reads the reject stages from it). Returns the number of rows marked."""
    first: dict[str, int] = {}  # row id -> the input file of its first row
    changed: dict[int, list[int]] = {}  # work shard -> its rows marked here
    for k, (start, stop) in enumerate(keys.bounds):
        for i in range(start, stop):
            rid = keys.ids[i]
            j = first.get(rid)
            if j is None:  # its first row: no repeat
                first[rid] = k
                continue
            want = ("input", f"duplicate_id: {rid!r} first in {files[j].name}")
            if (keys.stage1[i], keys.reasons1[i]) != want:
                keys.stage1[i], keys.reasons1[i] = want
                changed.setdefault(k, []).append(i)
    for k, rows in changed.items():
        name = shard_name(k, work.num_shards)
        start = keys.bounds[k][0]
        table = read_parquet(work.root / name)
        stages = table.column("reject_stage").to_pylist()
        reasons = table.column("reject_reason").to_pylist()
        for i in rows:
            stages[i - start], reasons[i - start] = keys.stage1[i], keys.reasons1[i]
        for column, values in (("reject_stage", stages), ("reject_reason", reasons)):
            at = table.schema.get_field_index(column)
            table = table.set_column(at, table.schema.field(at), pa.array(values, pa.string()))
        bookkeeping = ("index", "rows", "bytes", "sha256", "sealed_at")
        stats = {key: v for key, v in work.shards[name].items() if key not in bookkeeping}
        work.register(write_shard(work.root, k, work.num_shards, table, stats))
    return sum(len(rows) for rows in changed.values())
