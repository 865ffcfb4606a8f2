"""The filter stage: traces -> verdicts -> readability -> dedup -> selection -> SFT set + rejects.

Three passes, each resumable:
1. per input file (streamed): decontamination, verification (math / code / judge by domain),
   readability, and the per-row dedup features (only for rows still standing after
   verification); sealed as a work shard. Pipelined: while the feature workers compute file k's
   features, this process verifies file k+1 (in the verifiers' own workers) and seals file k-1.
   A Parquet input is read here without its reasoning (verification reads it only for the rows
   that need it); the feature workers read the texts from the file themselves, so no text goes
   through a pipe.
2. in memory, from small columns only: pass rates, difficulty band, dedup, selection, pairs, and
   the report's counts.
3. per work shard, in the worker processes: every row goes to `sft/` (kept, with `messages`) or
   `rejects/` (with its stage and reason), with Arrow compute (no Python rows); the workers write
   the shards, this process records them in the manifests and meanwhile draws the report.
Work shards of Parquet inputs hold only the small columns (ids, verdicts, features): pass 3 reads
the texts again from the input file, which costs less than compressing and reading them back.
Same input + same config = same output.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill.errors import UserError
from distill.filter import kernels
from distill.filter.config import FilterConfig, FilterInput
from distill.filter.decontam import PromptContamination
from distill.filter.features import FEATURE_FIELDS, features, preference_length
from distill.filter.plan import Keys, Plan, make_plan
from distill.filter.reasons import reason_group
from distill.filter.traces import REQUIRED, TraceRead, list_trace_files, read_trace_file
from distill.memory import die_with_parent
from distill.schema import DOMAINS, FILTERED_SCHEMA, SFT_SCHEMA, TRACE_SCHEMA, conform, stable_hash
from distill.shards import (
    MANIFEST,
    ShardStore,
    atomic_write_text,
    git_commit,
    package_versions,
    sha256_file,
    shard_name,
    write_shard,
)
from distill.trace import THINK_CLOSE, THINK_OPEN, assistant_text
from distill.verify.answers import REASONING_TAIL_CHARS
from distill.verify.dispatch import Verifiers, verifier_of, warm_up
from distill.verify.verdict import Verdict

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
CHUNK = 256  # rows per feature task (rows sent to the workers)
BULK_TEXT = "reasoning"  # not read by this process in the first pass of a Parquet input
# nor, when no row lacks a token count, this one: the feature workers read it and check that no
# row's is empty (a required field: such a file is read again the strict way, `_EmptyRequired`)
DEFERRED_TEXT = "completion"
OUT_BATCH = 1024  # rows per `messages` batch in pass 3 (keeps string offsets far below 2 GiB)


@dataclass
class FilterSummary:
    output: Path
    rows: int = 0
    kept: int = 0
    funnel: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_shards: int = 0


def identity_of(cfg: FilterConfig, files: list[Path]) -> dict[str, Any]:
    conf = cfg.model_dump(mode="json", exclude={"input", "output", "workers", "keep_work"})
    for part in ("math", "code"):
        conf["verify"][part].pop("workers", None)
    if cfg.input.mapping():  # how the input's columns are read (none for a trace file: as before)
        conf["input"] = cfg.input.mapping()
    return {
        "stage": "filter",
        "config": conf,
        "input": stable_hash([(f.name, f.stat().st_size) for f in files]),
    }


def _first_pass(
    files: list[Path], todo: list[int], work: ShardStore, cfg: FilterConfig, pool, progress, log
) -> None:
    task = progress.add_task("verifying", total=len(todo)) if progress else None

    def seal(job: _FirstPass) -> None:
        try:
            work_table, stats = job.finish(verifiers)
        except _EmptyRequired:  # rare: the whole file again, the way that records each bad row
            job = _FirstPass(job.k, job.path, read_trace_file(job.path, cfg.input), cfg, slim=False)
            job.verify(verifiers, contamination)
            job.submit(pool, split=True)
            work_table, stats = job.finish(verifiers)
        work.seal(job.k, work_table, stats)
        derived = ", ".join(f"{name} {n}" for name, n in stats.get("derived", {}).items())
        log(
            f"{files[job.k].name}: {stats['rows']} rows, {stats['rejected']} rejected in the first pass"
            + (f" (derived: {derived})" if derived else "")
        )
        if progress:
            progress.update(task, advance=1)

    with Verifiers(cfg.verify) as verifiers:
        warm_up(cfg.verify)  # beside this process's first read (the CLI starts it even earlier)
        pending: _FirstPass | None = None
        contamination = PromptContamination(cfg.decontaminate)  # for the whole run
        seen = _ids_of_sealed(files, work, todo)  # row id -> the input file it first came from
        for k in todo:
            read, slim = read_first_pass(files[k], cfg.input)
            job = _FirstPass(k, files[k], read, cfg, slim)
            job.mark_input_rejects(seen)
            if pending is None:
                job.submit(pool, every_row=True)  # busy while the verifiers start
            job.verify(verifiers, contamination)  # meanwhile the pool works on file k-1
            if pending is not None:
                # split when nothing else would run beside it: the last file, or an idle pool
                idle = all(future.done() for _, future in pending.futures)
                job.submit(pool, split=k == todo[-1] or idle)
                seal(pending)  # meanwhile the pool starts on file k
            pending = job
        if pending is not None:
            seal(pending)


def _ids_of_sealed(files: list[Path], work: ShardStore, todo: list[int]) -> dict[str, str]:
    """The row ids of the input files whose first pass a run before this one finished (resumed):
    a later file's copy of one of them is still a duplicate."""
    seen: dict[str, str] = {}
    pending = set(todo)
    for k in range(len(files)):
        if k not in pending:
            ids = _read_parquet(work.root / shard_name(k, work.num_shards), ["id"]).column("id")
            for rid in ids.to_pylist():
                seen.setdefault(rid, files[k].name)
    return seen


def _start_worker(parent: int, warm: bool) -> None:
    """A feature worker's initializer: die with `parent`; load the compiled kernels if `warm`."""
    die_with_parent(parent)
    if warm:
        kernels.warm()


def run_filter(cfg: FilterConfig, progress=None, log=print) -> FilterSummary:
    if not cfg.input.path or not cfg.output:
        raise UserError("filter needs an input and an output folder (-o/--output)")
    started = time.monotonic()
    files = list_trace_files(cfg.input.path)
    out = Path(cfg.output)
    identity = identity_of(cfg, files)
    done = _complete_manifest(out, identity)
    if done is not None:
        log(f"{out} is complete for this input and config; nothing to do")
        return _summary_from(out, done, started)
    work = ShardStore(out / "work", identity, len(files))
    work.open()
    todo = [k for k in range(len(files)) if not work.is_sealed(k)]
    summary = FilterSummary(out, resumed_shards=len(files) - len(todo))
    if summary.resumed_shards:
        log(f"resuming: {summary.resumed_shards} of {len(files)} input files already processed")
    # the workers load the compiled kernels themselves, as they start (on the first submit), while
    # this process verifies the first file: its startup is single-threaded, so the other core is
    # free (17 alternated pairs of runs: wall -6% against loading them here before forking)
    warm = bool(todo) and (cfg.dedup.exact or cfg.dedup.near or cfg.readability.repetition)
    with ProcessPoolExecutor(cfg.workers, initializer=_start_worker, initargs=(os.getpid(), warm)) as pool:
        if todo:
            _first_pass(files, todo, work, cfg, pool, progress, log)
        keys = _read_keys(out / "work", files, work, cfg.dedup.num_perm, problems=cfg.dedup.prompts)
        plan = make_plan(keys, cfg)
        input_rejects = [
            r
            for k in range(len(files))
            for r in work.shards.get(shard_name(k, len(files)), {}).get("input_reject_rows", [])
        ]
        counts = count_rows(keys, plan, input_rejects)
        counts.update(_input_counts(work, len(files)))
        if not counts["rows"]:
            log(f"warning: {cfg.input.path} has no trace rows: the output is empty")
        if counts["no_answer_column"] and cfg.verify.domains.get("math") == "math":
            log(
                f"warning: {counts['no_answer_column']} rows have no gold answer (no answer column): "
                "those the math verifier checks get `error: no gold answer`; for a set without golds, "
                "map `verify.domains: {math: none}` in the recipe"
            )
        from distill.filter.report import write_report

        # the plots take seconds of CPU: drawn here while the workers write sft/ and rejects/
        report = _third_pass(
            out,
            identity,
            files,
            work,
            plan,
            pool,
            keys,
            meanwhile=lambda: write_report(out, counts, plan, cfg),
        )
    _write_input_rejects(out, files, input_rejects)
    manifest = _write_manifest(out, identity, cfg, files, report)
    if not cfg.keep_work:
        shutil.rmtree(out / "work", ignore_errors=True)
    return _summary_from(out, manifest, started, summary.resumed_shards)


# --- reading inputs ------------------------------------------------------------------------------


def _text_free(path: Path) -> bool:
    """Whether the work shard of this input leaves the texts out (read again in pass 3)."""
    return path.suffix == ".parquet"


def _input_counts(work: ShardStore, n: int) -> dict[str, Any]:
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


def read_input(path: Path, spec: FilterInput | None = None) -> tuple[pa.Table, list[dict]]:
    """`read_trace_file`, with a fast path for a Parquet file that already is a valid trace file
    (TRACE_SCHEMA types, every required field set) read as it is (no `input` mapping): the same
    table, without Python rows."""
    spec = spec or FilterInput()
    if path.suffix == ".parquet" and not spec.mapping():
        table = _valid_trace_parquet(path)
        if table is not None:
            return table, []
    read = read_trace_file(path, spec)
    return read.table, read.rejects


def read_first_pass(path: Path, spec: FilterInput | None = None) -> tuple[TraceRead, bool]:
    """What the first pass of this process needs of an input file: (what was read, slim). A valid
    Parquet trace file is read without its `reasoning` (`slim`: the feature workers read the texts
    from the file themselves, and verification reads `reasoning` only where it needs it). Any other
    file, or any file under an `input` mapping, goes through `read_trace_file`."""
    spec = spec or FilterInput()
    if path.suffix == ".parquet" and not spec.mapping():
        defer = (DEFERRED_TEXT,) if _no_nulls(path, (DEFERRED_TEXT, "completion_tokens")) else ()
        table = _valid_trace_parquet(path, skip=(BULK_TEXT,), defer=defer)
        if table is not None:
            return TraceRead(table, []), True
    return read_trace_file(path, spec), False


def _no_nulls(path: Path, columns: tuple[str, ...]) -> bool:
    """Whether the Parquet statistics of every row group show no null in these columns."""
    try:
        meta = pq.ParquetFile(path).metadata
        names = [meta.schema.column(j).path for j in range(meta.num_columns)]
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            for name in columns:
                stats = group.column(names.index(name)).statistics
                if stats is None or not stats.has_null_count or stats.null_count:
                    return False
    except (pa.ArrowException, OSError, ValueError):
        return False
    return True


def _valid_trace_parquet(
    path: Path, skip: tuple[str, ...] = (), defer: tuple[str, ...] = ()
) -> pa.Table | None:
    """The conformed table (without the nullable columns in `skip`), or None when
    `read_trace_file` has something to say (or reject). `defer`: required columns left out too,
    whose statistics show no null; the caller checks that none is empty (`_EmptyRequired`)."""
    try:
        schema = pq.ParquetFile(path).schema_arrow
    except (pa.ArrowInvalid, OSError):
        return None
    names = schema.names
    if len(set(names)) != len(names):
        return None
    for f in TRACE_SCHEMA:
        if f.name not in names:
            if not f.nullable:
                return None
        elif schema.field(f.name).type != f.type:
            return None
    wanted = [f for f in TRACE_SCHEMA if (f.name not in skip or not f.nullable) and f.name not in defer]
    try:
        table = _read_parquet(path, [f.name for f in wanted if f.name in names])
    except (pa.ArrowInvalid, OSError):
        return None
    for f in wanted:
        if not f.nullable and table.column(f.name).null_count:
            return None
    for name in REQUIRED:  # a row without one is a reject: read_trace_file records it
        if name in defer:
            continue
        column = table.column(name)
        if column.null_count or pc.any(pc.equal(pc.binary_length(column), 0)).as_py():
            return None
    return conform(table, pa.schema(wanted))


READ_BATCH_ROWS = 256  # rows per Arrow batch when reading an input: 256 traces of 32k tokens ~ 32 MiB


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file, in this thread: pyarrow's thread pool costs CPU here, not time (the other
    core is busy with workers), and `pq.read_table`'s dataset layer imports pandas."""
    return _read_file(pq.ParquetFile(path), columns)


def _read_present(path: Path, columns: list[str] | tuple[str, ...]) -> pa.Table:
    """Those of `columns` that the Parquet file has (one open, in this thread)."""
    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    return _read_file(file, [c for c in columns if c in names])


def _read_file(file: pq.ParquetFile, columns: list[str] | None) -> pa.Table:
    """In batches of READ_BATCH_ROWS rows: a text column of a whole shard (40 MB and more) would be
    one buffer above glibc's largest mmap threshold, mapped and faulted in afresh on every read
    (`distill/memory.py`); batch-sized buffers are reused from the heap (kernel time: -75%)."""
    batches = file.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns, use_threads=False)
    schema = (
        file.schema_arrow if columns is None else pa.schema([file.schema_arrow.field(c) for c in columns])
    )
    return pa.Table.from_batches(list(batches), schema=schema)


def _file_features(
    path: Path, idx: list[int], readability, dedup, tails: tuple[int, ...] = ()
) -> dict[str, Any]:
    """`features` of rows `idx` (ascending) of a valid Parquet trace file, read here (in a worker
    process: the texts never travel through a pipe), a batch of READ_BATCH_ROWS rows at a time: a
    few MB of text in memory instead of the whole file's, twice (Arrow and Python)."""
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


# --- pass 1 ------------------------------------------------------------------------------------


def _blank_answer(row: dict[str, Any]) -> bool:
    """No final answer after the reasoning: verification falls back to the reasoning's end."""
    return not (row.get("content") or "").strip()


class _EmptyRequired(Exception):
    """A Parquet input read without its completions has a row with an empty one (a reject)."""


class _FirstPass:
    """One input file's first pass: `verify`, `submit` the features, later `finish` (and seal).

    Features are computed only for rows that verification and decontamination leave standing: a
    rejected row's readability, digest and signature are never used (the reject stage is the
    first that applies; dedup sees surviving rows only). The first file submits every row's
    features before verifying (`every_row`), so that the workers are busy while the verifiers start."""

    def __init__(self, k: int, path: Path, read: TraceRead, cfg: FilterConfig, slim: bool) -> None:
        self.k, self.path, self.cfg, self.slim = k, path, cfg, slim
        table, rejects = read.table, read.rejects
        # pass 3 reads a Parquet input's texts again (`read_input`), which maps no columns: a file
        # whose rows were mapped keeps its texts in the work shard, as a JSONL input does
        self.text_free = _text_free(path) and (slim or read.native)
        self.derived, self.no_answer_column = read.derived, read.no_answer_column
        self.input_rejects = len(rejects)
        self.input_reject_rows = rejects  # kept in the work manifest, so a resumed run still reports them
        if slim:  # no reasoning; the completion, if read, stays in Arrow (only its length is used)
            tokens = table.column("completion_tokens").cast(pa.int64())
            if tokens.null_count:  # characters / 4 where the count is unknown (then it was read)
                chars = pc.divide(pc.utf8_length(table.column(DEFERRED_TEXT)).cast(pa.int64()), 4)
                tokens = pc.if_else(pc.is_null(tokens), chars, tokens)
            self.pref = tokens
            read = table.drop_columns([DEFERRED_TEXT]) if DEFERRED_TEXT in table.column_names else table
            self.rows = read.to_pylist()
        else:
            self.rows = table.to_pylist()
            self.pref = pa.array([preference_length(r) for r in self.rows], pa.int64())
        # what `finish` needs of the table: the texts are in `rows` now (a text-free work shard
        # lets the table's text buffers go at once)
        self.table = table.select(["id", "prompt_id"]) if self.text_free else table
        self.futures: list[tuple[list[int], Future]] = []
        self.verdicts: list[Verdict | None] = []
        # math rows with a blank final answer, verified on the tail of their reasoning, which the
        # feature workers read (`finish`): this process never reads a reasoning column for them
        self.tail_rows: tuple[int, ...] = ()
        if slim:
            self.tail_rows = tuple(
                i
                for i, row in enumerate(self.rows)
                if _blank_answer(row) and verifier_of(row, cfg.verify) == "math"
            )
        self.contaminated: list[str | None] = []
        self.input_stage: list[str | None] = [None] * len(self.rows)  # `mark_input_rejects`

    def mark_input_rejects(self, seen: dict[str, str]) -> None:
        """Reject stage `input` for rows that are traces but not usable ones: an id an earlier row
        has (in this file or an earlier one; every decision of the second pass is keyed by id, so
        the second row would share the first one's fate), or a domain outside DOMAINS (no verifier
        would look at it). They go to rejects/ with their texts."""
        name = self.path.name
        for i, row in enumerate(self.rows):
            rid, domain = row["id"], row.get("domain")
            first = seen.get(rid)
            if first is None:
                seen[rid] = name
            else:
                self.input_stage[i] = f"duplicate_id: {rid!r} first in {first}"
            if domain not in DOMAINS and self.input_stage[i] is None:
                self.input_stage[i] = f"unknown_domain: {domain!r} (known: {', '.join(DOMAINS)})"

    def verify(self, verifiers: Verifiers, contamination: PromptContamination) -> None:
        if self.slim:
            self._add_reasoning(verifiers)
        later = set(self.tail_rows)
        now = [i for i in range(len(self.rows)) if i not in later]
        self.verdicts = [None] * len(self.rows)
        for i, verdict in zip(now, verifiers.verify([self.rows[i] for i in now]), strict=True):
            self.verdicts[i] = verdict
        self.contaminated = contamination.reasons(self.rows)

    def _add_reasoning(self, verifiers: Verifiers) -> None:
        """A slim table's `reasoning`, for the rows whose verification may read it: a blank final
        answer (math falls back to the end of the reasoning) and code rows."""
        later = set(self.tail_rows)
        need = [
            i
            for i, row in enumerate(self.rows)
            if i not in later and (_blank_answer(row) or verifiers.kind_of(row) == "code")
        ]
        for row in self.rows:
            row["reasoning"] = None
        table = _read_present(self.path, [BULK_TEXT]) if need else None
        if table is not None and table.num_columns:
            column = table.column(BULK_TEXT)
            for i in need:
                self.rows[i]["reasoning"] = column[i].as_py()

    def _first_stage(self, i: int) -> tuple[str, str] | None:
        """The reject stage and reason from the input checks, decontamination and verification."""
        v = self.verdicts[i]
        if self.input_stage[i]:
            return "input", self.input_stage[i]
        if self.contaminated[i]:
            return "decontaminate", self.contaminated[i]
        if v is not None and v.status == "fail":
            return "verify", f"fail: {v.reason}"
        if v is not None and v.status == "error" and self.cfg.verify.on_error == "exclude":
            return "verify", f"error: {v.reason}"
        return None

    def submit(self, pool, every_row: bool = False, split: bool = False) -> None:
        """The features, in the pool. `every_row`: of every row, not only of those that verification
        left standing (implies `split`); `split`: in one task per worker."""
        if every_row:
            wanted = list(range(len(self.rows)))
        else:
            wanted = [i for i in range(len(self.rows)) if self._first_stage(i) is None]
        cfg = self.cfg
        if self.slim:
            # one task per file, which reads the file's texts once (a file's rows split over tasks
            # would read them once per task); the workers still run side by side, on file k and
            # file k+1, since verifying a file takes this process less time than its features.
            # The first and the last file are split, and any file that finds the pool idle.
            parts = cfg.workers if every_row or split else 1
            size = max(1, -(-len(wanted) // parts))
            for start in range(0, len(wanted), size):
                idx = wanted[start : start + size]
                tails = self.tail_rows if start == 0 else ()  # every one, rejected or not: to verify
                task = pool.submit(_file_features, self.path, idx, cfg.readability, cfg.dedup, tails)
                self.futures.append((idx, task))
            if not wanted and self.tail_rows:
                task = pool.submit(_file_features, self.path, [], cfg.readability, cfg.dedup, self.tail_rows)
                self.futures.append(([], task))
            return
        for start in range(0, len(wanted), CHUNK):
            idx = wanted[start : start + CHUNK]
            slim = [{key: self.rows[i].get(key) for key in FEATURE_FIELDS} for i in idx]
            self.futures.append((idx, pool.submit(features, slim, cfg.readability, cfg.dedup)))

    def finish(self, verifiers: Verifiers) -> tuple[pa.Table, dict]:
        cfg, n = self.cfg, len(self.rows)
        checks: list[tuple[str, str] | None] = [None] * n
        digests = [b""] * n
        signatures = np.full((n, cfg.dedup.num_perm), 0xFFFFFFFF, np.uint32)  # "no signature"
        results = [(idx, fut.result()) for idx, fut in self.futures]
        if any(f.get("empty_required") for _, f in results):
            raise _EmptyRequired(self.path)
        if self.tail_rows:
            tails = {i: tail for _, f in results for i, tail in f.get("tails", {}).items()}
            rows = [{**self.rows[i], "reasoning": tails[i]} for i in self.tail_rows]
            for i, verdict in zip(self.tail_rows, verifiers.verify(rows), strict=True):
                self.verdicts[i] = verdict
        for idx, f in results:
            for j, i in enumerate(idx):
                checks[i], digests[i] = f["checks"][j], f["digests"][j]
            signatures[idx] = f["signatures"]
        verdict, verdict_reason, stages, reasons = [], [], [], []
        for i in range(n):
            v = self.verdicts[i]
            verdict.append(v.status if v else None)
            verdict_reason.append(v.reason if v else None)
            first = self._first_stage(i)
            if first is None and checks[i] is not None:
                first = "readability", f"{checks[i][0]}: {checks[i][1]}"
            stages.append(first[0] if first else None)
            reasons.append(first[1] if first else None)
        extra = {
            "verdict": pa.array(verdict, pa.string()),
            "verdict_reason": pa.array(verdict_reason, pa.string()),
            "pass_rate": pa.nulls(n, pa.float64()),
            "reject_stage": pa.array(stages, pa.string()),
            "reject_reason": pa.array(reasons, pa.string()),
            "_pref": self.pref,
            "_digest": pa.array(digests, pa.binary()),
            "_sig": _binary_rows(signatures),
        }
        schema = WORK_KEYS_SCHEMA if self.text_free else WORK_SCHEMA
        columns = [extra[f.name] if f.name in extra else self.table.column(f.name) for f in schema]
        bad_golds = Counter(
            str(self.rows[i].get("answer"))
            for i, v in enumerate(self.verdicts)
            if v is not None and v.status == "error" and v.reason == "unparsable gold"
        )
        self.rows = []  # done with the texts
        rejected = sum(stage is not None for stage in stages)
        stats = {
            "rows": n,
            "rejected": rejected,
            "input_rejects": self.input_rejects,
            "input_reject_rows": self.input_reject_rows,
        }
        if self.derived:
            stats["derived"] = self.derived
        if bad_golds:
            stats["unparsable_golds"] = dict(bad_golds)
        if self.no_answer_column:
            stats["no_answer_column"] = self.no_answer_column
        return pa.Table.from_arrays(columns, schema=schema), stats


def _binary_rows(values: np.ndarray) -> pa.ChunkedArray:
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


# --- pass 2 ------------------------------------------------------------------------------------


def _read_keys(
    root: Path, files: list[Path], work: ShardStore, num_perm: int, problems: bool = False
) -> Keys:
    """The work shards' small columns, concatenated; `problems`: also each prompt's problem (from
    the work shard when it holds the texts, else from the input file: a small column)."""
    keys = Keys()
    cols = ["id", "prompt_id", "verdict", "reject_stage", "reject_reason", "_pref", "_digest", "_sig"]
    sigs = []
    for k in range(len(files)):
        path = root / shard_name(k, work.num_shards)
        t = _read_parquet(path, cols)
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
    table = _read_present(work_path, ["problem"])
    if not table.num_columns:
        table = _read_present(source, ["id", "problem"]) if source.suffix == ".parquet" else None
        if (
            table is None
            or table.column_names != ["id", "problem"]
            or not table.column("id").equals(keys.column("id"))
        ):
            table, _ = read_input(source)
    return table.column("problem").to_pylist()


def final_rejects(keys: Keys, plan: Plan) -> tuple[list[str | None], list[str | None]]:
    """Every row's reject stage and reason after both passes (None, None: kept)."""
    stages, reasons = list(keys.stage1), list(keys.reasons1)
    decisions = plan.decisions
    for i, rid in enumerate(keys.ids):
        if stages[i] is None and rid in decisions:
            stages[i], reasons[i] = decisions[rid]
    return stages, reasons


def count_rows(keys: Keys, plan: Plan, input_rejects: list[dict] | None = None) -> dict[str, Any]:
    """The report's counts, from the small columns alone. `input_rejects`: the input rows that
    were not usable traces (`rejects.jsonl`): counted in the `input` stage."""
    stages, reasons = final_rejects(keys, plan)
    input_rejects = input_rejects or []
    counts: dict[str, Any] = {
        "rows": len(keys.ids) + len(input_rejects),
        "kept": 0,
        "stages": Counter({"input": len(input_rejects)} if input_rejects else {}),
        "reasons": Counter(f"input: {reason_group('input', r['reason'])}" for r in input_rejects),
        "verdicts": Counter(v or "none" for v in keys.verdicts),
        "kept_tokens": [],
        "rejected_tokens": [],
    }
    # a row's tokens: completion_tokens, else characters / 4 - exactly its preference length
    for stage, reason, tokens in zip(stages, reasons, keys.lengths, strict=True):
        if stage is None:
            counts["kept_tokens"].append(tokens)
        else:
            counts["stages"][stage] += 1
            counts["reasons"][f"{stage}: {reason_group(stage, reason)}"] += 1
            counts["rejected_tokens"].append(tokens)
    counts["kept"] = len(counts["kept_tokens"])
    return counts


# --- pass 3 ------------------------------------------------------------------------------------


def messages_of(row: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": row["prompt"]},
        {"role": "assistant", "content": assistant_text(row["reasoning"], row["content"])},
    ]


def _messages(table: pa.Table) -> pa.ChunkedArray:
    """`messages_of` for every row, with Arrow compute: [user: prompt, assistant: think + answer]."""
    chunks = []
    message_list = SFT_SCHEMA.field("messages").type
    for batch in table.select(["prompt", "reasoning", "content"]).to_batches(max_chunksize=OUT_BATCH):
        n = batch.num_rows
        if n == 0:
            continue
        assistant = pc.binary_join_element_wise(
            f"{THINK_OPEN}\n",
            pc.fill_null(batch.column("reasoning"), ""),
            f"\n{THINK_CLOSE}\n\n",
            pc.fill_null(batch.column("content"), ""),
            "",
        )
        order = np.empty(2 * n, dtype=np.int64)  # prompt 0, answer 0, prompt 1, answer 1, ...
        order[0::2], order[1::2] = np.arange(n), np.arange(n, 2 * n)
        contents = pa.concat_arrays([batch.column("prompt"), assistant]).take(pa.array(order))
        roles = pa.array(["user", "assistant"] * n, pa.string())
        values = pa.StructArray.from_arrays([roles, contents], fields=list(message_list.value_type))
        offsets = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
        chunks.append(pa.ListArray.from_arrays(offsets, values, type=message_list))
    return pa.chunked_array(chunks, message_list)


def _trace_table(out: Path, source: Path, work_name: str) -> pa.Table:
    """A work shard with its input rows' texts: FILTERED_SCHEMA's trace columns + the keys."""
    extra = {f.name for f in WORK_EXTRA}  # the second pass's keys: not needed here
    table = _read_present(out / "work" / work_name, [f.name for f in WORK_SCHEMA if f.name not in extra])
    if "completion" in table.column_names:  # a work shard of a JSONL input holds the texts itself
        return table
    source_table, _ = read_input(source)
    if not source_table.column("id").equals(table.column("id")):
        raise UserError(f"{source} changed since its first pass; use a new --output folder")
    columns = {name: table.column(name) for name in table.column_names}
    columns.update({name: source_table.column(name) for name in source_table.column_names})
    return pa.table(columns)


def _third_pass(out: Path, identity, files, work: ShardStore, plan: Plan, pool, keys: Keys, meanwhile):
    """Every work shard, in the worker processes: texts read again, `messages` built, `sft/` and
    `rejects/` shards written (`write_shard`); this process runs `meanwhile()` (after submitting:
    the pool forks no process while another thread runs), then registers the shards in order.
    Returns what `meanwhile` returned."""
    n = len(files)
    sft = ShardStore(out / "sft", identity, n)
    rejects = ShardStore(out / "rejects", identity, n)
    for store in (sft, rejects):
        store.open()
    pair_ids = {rid for _, a, b in plan.pairs for rid in (a, b)}
    pair_rows: dict[str, dict] = {}
    tasks = []
    for k, (start, stop) in enumerate(keys.bounds):
        sealed = sft.is_sealed(k) and rejects.is_sealed(k)
        ids = keys.ids[start:stop]
        wanted = [rid for rid in ids if rid in pair_ids]
        if sealed and not wanted:
            continue
        decisions = {rid: plan.decisions[rid] for rid in ids if rid in plan.decisions}
        rates = {p: plan.pass_rates.get(p) for p in set(keys.prompts[start:stop])}
        job = _OutputShard(
            out, files[k], k, n, shard_name(k, work.num_shards), decisions, rates, wanted, not sealed
        )
        tasks.append(pool.submit(job.run))
    result_of_meanwhile = meanwhile()
    for task in tasks:
        result = task.result()
        if result.sft is not None:
            sft.register(result.sft)
            rejects.register(result.rejects)
        pair_rows.update(result.pair_rows)
    sft.merge()
    rejects.merge()
    if plan.pairs:
        _write_pairs(out, identity, plan, pair_rows)
    return result_of_meanwhile


@dataclass
class _OutputResult:
    sft: dict | None  # the shard records, None when not written (already sealed)
    rejects: dict | None
    pair_rows: dict[str, dict]


@dataclass
class _OutputShard:
    """Pass 3 of one work shard, picklable: runs in a worker process."""

    out: Path
    source: Path
    k: int
    n: int
    work_name: str
    decisions: dict[str, tuple[str, str]]
    pass_rates: dict[str, float | None]
    pair_ids: list[str]
    write: bool

    def run(self) -> _OutputResult:
        table = _trace_table(self.out, self.source, self.work_name)
        pair_rows = {}
        if self.pair_ids:
            ids, stages = table.column("id").to_pylist(), table.column("reject_stage").to_pylist()
            wanted = set(self.pair_ids)  # not a later row with a pair row's id (stage input)
            take = [i for i, rid in enumerate(ids) if rid in wanted and stages[i] != "input"]
            for row in table.select(["id", "prompt", "reasoning", "content"]).take(take).to_pylist():
                pair_rows[row["id"]] = row
        if not self.write:
            return _OutputResult(None, None, pair_rows)
        kept, dropped, stats = _split(table, self.decisions, self.pass_rates)
        del table
        return _OutputResult(
            write_shard(self.out / "sft", self.k, self.n, kept, stats),
            write_shard(self.out / "rejects", self.k, self.n, dropped, {}),
            pair_rows,
        )


def _split(
    table: pa.Table, decisions: dict[str, tuple[str, str]], pass_rates: dict[str, float | None]
) -> tuple[pa.Table, pa.Table, dict]:
    """A work shard with its texts -> (its SFT rows with messages, its rejects, the SFT stats)."""
    ids = table.column("id").to_pylist()
    stages = table.column("reject_stage").to_pylist()
    reasons = table.column("reject_reason").to_pylist()
    for i, rid in enumerate(ids):
        if stages[i] is None and rid in decisions:
            stages[i], reasons[i] = decisions[rid]
    prompts = table.column("prompt_id").to_pylist()
    updated = {
        "pass_rate": pa.array([pass_rates.get(p) for p in prompts], pa.float64()),
        "reject_stage": pa.array(stages, pa.string()),
        "reject_reason": pa.array(reasons, pa.string()),
    }
    filtered = pa.Table.from_arrays(
        [updated[f.name] if f.name in updated else table.column(f.name) for f in FILTERED_SCHEMA],
        schema=FILTERED_SCHEMA,
    )
    keep = pa.array([stage is None for stage in stages], pa.bool_())
    kept = filtered.filter(keep)
    sft_table = pa.Table.from_arrays([_messages(kept), *kept.columns], schema=SFT_SCHEMA)
    kept_prompts = {p for p, stage in zip(prompts, stages, strict=True) if stage is None}
    return sft_table, filtered.filter(pc.invert(keep)), {"prompts": len(kept_prompts)}


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict({f.name: [r.get(f.name) for r in rows] for f in schema}, schema=schema)


PAIR_SCHEMA = pa.schema(
    [
        pa.field("prompt_id", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("chosen", pa.list_(SFT_SCHEMA.field("messages").type.value_type)),
        pa.field("rejected", pa.list_(SFT_SCHEMA.field("messages").type.value_type)),
        pa.field("chosen_id", pa.string()),
        pa.field("rejected_id", pa.string()),
    ]
)


def _write_pairs(out: Path, identity, plan: Plan, rows: dict[str, dict]) -> None:
    store = ShardStore(out / "pairs", identity, 1)
    store.open()
    pairs = [
        {
            "prompt_id": pid,
            "prompt": rows[a]["prompt"],
            "chosen": messages_of(rows[a]),
            "rejected": messages_of(rows[b]),
            "chosen_id": a,
            "rejected_id": b,
        }
        for pid, a, b in plan.pairs
    ]
    store.seal(0, _table(pairs, PAIR_SCHEMA), {"pairs": len(pairs)})
    store.merge()


def _write_input_rejects(out: Path, files: list[Path], rejects: list[dict]) -> None:
    path = out / "rejects.jsonl"
    if rejects or not path.exists():
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))


# --- manifest ----------------------------------------------------------------------------------


def _complete_manifest(out: Path, identity: dict) -> dict | None:
    try:
        doc = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if doc.get("identity") != identity:
        raise UserError(
            f"{out} already holds a filter output made from another input or config; "
            "use a new --output folder, or restore the config."
        )
    return doc if doc.get("complete") else None


def _write_manifest(out: Path, identity, cfg: FilterConfig, files: list[Path], report: dict) -> dict:
    source_manifest = Path(cfg.input.path) / MANIFEST
    doc = {
        "complete": True,
        "identity": identity,
        "input": {
            "path": str(cfg.input.path),
            "files": len(files),
            "manifest_sha256": sha256_file(source_manifest) if source_manifest.is_file() else None,
        },
        "totals": {
            "rows": report["rows"],
            "kept": report["kept"],
            "rejected": report["rows"] - report["kept"],
        },
        "funnel": report["funnel"],
        "config": cfg.model_dump(mode="json"),
        "versions": package_versions(("math-verify", "datasketch", "vllm")),
        "git_commit": git_commit(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_text(out / MANIFEST, json.dumps(doc, indent=1))
    return doc


def _summary_from(out: Path, manifest: dict, started: float, resumed: int = 0) -> FilterSummary:
    return FilterSummary(
        out,
        rows=manifest["totals"]["rows"],
        kept=manifest["totals"]["kept"],
        funnel=manifest["funnel"],
        seconds=time.monotonic() - started,
        resumed_shards=resumed,
    )


__all__ = ["TRACE_SCHEMA", "FilterSummary", "messages_of", "run_filter"]
