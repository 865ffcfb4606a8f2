"""The filter's output pass: every work shard's rows to `sft/` (kept, with `messages`) or
`rejects/` (with their stage and reason), the preference pairs to `pairs/`, and the input rows
that were no usable traces to `rejects.jsonl`.

Per work shard, in the worker processes, with Arrow compute (no Python rows): the texts read
again (from the input file when the work shard leaves them out), the plan's decisions and pass
rates applied, the shards written; this process records them in the manifests and meanwhile
draws the report. Same work shards + same plan = same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill.errors import UserError
from distill.filter.card import filter_record, write_filter_cards
from distill.filter.plan import Keys, Plan
from distill.filter.read import read_input, read_present
from distill.filter.work import WORK_EXTRA, WORK_SCHEMA, FilterRun
from distill.provenance import atomic_write_text, command_line
from distill.schema import FILTERED_SCHEMA, SFT_SCHEMA
from distill.shards import ShardStore, shard_name, write_shard
from distill.trace import THINK_CLOSE, THINK_OPEN, assistant_text

OUT_BATCH = 1024  # rows per `messages` batch (keeps string offsets far below 2 GiB)
T = TypeVar("T")


def messages_of(row: dict[str, Any]) -> list[dict[str, str]]:
    """One row's SFT chat: the user's prompt, then the assistant turn (`assistant_text`)."""
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
        reasoning, content = batch.column("reasoning"), pc.fill_null(batch.column("content"), "")
        assistant = pc.binary_join_element_wise(  # `assistant_text`, column-wise
            f"{THINK_OPEN}\n", pc.fill_null(reasoning, ""), f"\n{THINK_CLOSE}\n\n", content, ""
        )
        if reasoning.null_count:
            assistant = pc.if_else(pc.is_null(reasoning), content, assistant)
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
    table = read_present(out / "work" / work_name, [f.name for f in WORK_SCHEMA if f.name not in extra])
    if "completion" in table.column_names:  # a work shard of a JSONL input holds the texts itself
        return table
    source_table, _ = read_input(source)
    if not source_table.column("id").equals(table.column("id")):
        raise UserError(f"{source} changed since its first pass; use a new --output folder")
    columns = {name: table.column(name) for name in table.column_names}
    columns.update({name: source_table.column(name) for name in source_table.column_names})
    return pa.table(columns)


def write_outputs(run: FilterRun, keys: Keys, plan: Plan, meanwhile: Callable[[], T]) -> T:
    """Every work shard, in the worker processes: texts read again, `messages` built, `sft/` and
    `rejects/` shards written (`write_shard`); this process runs `meanwhile()` (after submitting:
    the pool forks no process while another thread runs), then registers the shards in order,
    and writes `pairs/`. Returns what `meanwhile` returned."""
    out, identity, files, work, pool = run.out, run.identity, run.files, run.work, run.pool
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
            out=out,
            source=files[k],
            k=k,
            n=n,
            work_name=shard_name(k, work.num_shards),
            decisions=decisions,
            pass_rates=rates,
            pair_ids=wanted,
            write=not sealed,
        )
        tasks.append(pool.submit(job.run))
    result_of_meanwhile = meanwhile()
    for task in tasks:
        result = task.result()
        if result.sft is not None:
            sft.register(result.sft)
            rejects.register(result.rejects)
        pair_rows.update(result.pair_rows)
    sft.merge({"command": command_line()})  # the card's "how it was made" (and a mix's cards)
    rejects.merge()
    if plan.pairs:
        _write_pairs(out, identity, plan, pair_rows)
    record = filter_record(run.cfg.model_dump(mode="json"), str(run.cfg.input.path))
    write_filter_cards(out, record, run.cfg.card, run.log)
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


def _write_pairs(out: Path, identity: dict[str, Any], plan: Plan, rows: dict[str, dict]) -> None:
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


def write_input_rejects(out: Path, rejects: list[dict]) -> None:
    """`rejects.jsonl`: the input rows that were not usable traces (a line each, with their reason)."""
    path = out / "rejects.jsonl"
    if rejects or not path.exists():
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))
