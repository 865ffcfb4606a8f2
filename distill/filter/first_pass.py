"""The filter's first pass, one input file at a time: input checks, decontamination, verification
(math / code / judge by domain), readability and the per-row dedup features, sealed as the file's
work shard (`distill/filter/work.py`).

Pipelined: while the feature workers compute file k's features, this process verifies file k+1
(in the verifiers' own workers) and seals file k-1. A Parquet input is read here without its
reasoning (verification reads it only for the rows that need it); the feature workers read the
texts from the file themselves (`features.file_features`), so no text goes through a pipe.
Features are computed only for rows still standing after the input checks, decontamination and
verification: the reject stage is the first that applies.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill.filter.config import FilterConfig
from distill.filter.decontam import PromptContamination
from distill.filter.features import FEATURE_FIELDS, features, file_features, preference_length
from distill.filter.read import BULK_TEXT, DEFERRED_TEXT, read_first_pass, read_present, text_free
from distill.filter.traces import TraceRead, read_trace_file
from distill.filter.work import WORK_KEYS_SCHEMA, WORK_SCHEMA, FilterRun, binary_rows, ids_of_sealed
from distill.schema import DOMAINS
from distill.verify.dispatch import Verifiers, verifier_of, warm_up
from distill.verify.verdict import Verdict

CHUNK = 256  # rows per feature task (rows sent to the workers)


def first_pass(run: FilterRun, todo: list[int]) -> None:
    """Pass 1 of the input files `todo` (indexes into `run.files`): each sealed as its work shard."""
    files, work, cfg, pool, progress, log = run.files, run.work, run.cfg, run.pool, run.progress, run.log
    task = progress.add_task("verifying", total=len(todo)) if progress else None

    def seal(job: _FirstPass) -> None:
        try:
            work_table, stats = job.finish(verifiers)
        except EmptyRequired:  # rare: the whole file again, the way that records each bad row
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
        seen = ids_of_sealed(files, work, todo)  # row id -> the input file it first came from
        for k in todo:
            read, slim = read_first_pass(files[k], cfg.input)
            job = _FirstPass(k, files[k], read, cfg, slim)
            job.mark_input_rejects(seen, files)
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


def _blank_answer(row: dict[str, Any]) -> bool:
    """No final answer after the reasoning: verification falls back to the reasoning's end."""
    return not (row.get("content") or "").strip()


class EmptyRequired(Exception):
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
        self.text_free = text_free(path) and (slim or read.native)
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

    def mark_input_rejects(self, seen: dict[str, int], files: list[Path]) -> None:
        """Reject stage `input` for rows that are traces but not usable ones: an id an earlier row
        has (in this file or an earlier one; every decision of the second pass is keyed by id, so
        the second row would share the first one's fate), or a domain outside DOMAINS (no verifier
        would look at it). They go to rejects/ with their texts. `seen`: row id -> the index of the
        first input file it is known in; an id known only from a later file (sealed by another
        worker) is no repeat here: the plan of a scaled-out run marks repeats over every file."""
        for i, row in enumerate(self.rows):
            rid, domain = row["id"], row.get("domain")
            first = seen.get(rid)
            if first is None or first > self.k:
                seen[rid] = self.k
            else:
                self.input_stage[i] = f"duplicate_id: {rid!r} first in {files[first].name}"
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
        table = read_present(self.path, [BULK_TEXT]) if need else None
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

    def submit(self, pool: Executor, every_row: bool = False, split: bool = False) -> None:
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
                task = pool.submit(file_features, self.path, idx, cfg.readability, cfg.dedup, tails)
                self.futures.append((idx, task))
            if not wanted and self.tail_rows:
                task = pool.submit(file_features, self.path, [], cfg.readability, cfg.dedup, self.tail_rows)
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
            raise EmptyRequired(self.path)
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
            "_sig": binary_rows(signatures),
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
