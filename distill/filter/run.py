"""The filter stage: traces -> verdicts -> readability -> dedup -> selection -> SFT set + rejects.

Three passes, each resumable:
1. per input file (streamed): decontamination, verification (math / code / judge by domain),
   readability, and the per-row dedup features; sealed as a work shard.
2. in memory, from small columns only: pass rates, difficulty band, dedup, selection, pairs.
3. per work shard: every row goes to `sft/` (kept, with `messages`) or `rejects/` (with its
   stage and reason). Then the report and the manifest.
Same input + same config = same output.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import UserError
from distill.filter.config import FilterConfig
from distill.filter.features import FEATURE_FIELDS, features
from distill.filter.plan import Keys, Plan, make_plan
from distill.filter.traces import list_trace_files, read_trace_file
from distill.filter.verdict import Verdict
from distill.filter.verifiers import Verifiers
from distill.generate.prompts import assistant_text
from distill.schema import FILTERED_SCHEMA, SFT_SCHEMA, TRACE_SCHEMA, stable_hash
from distill.shards import MANIFEST, ShardStore, atomic_write_text, git_commit, package_versions, sha256_file

WORK_EXTRA = [
    pa.field("_pref", pa.int64()),
    pa.field("_digest", pa.binary()),
    pa.field("_sig", pa.binary()),
]
WORK_SCHEMA = pa.schema([*FILTERED_SCHEMA, *WORK_EXTRA])
CHUNK = 256  # rows per feature task


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
    return {
        "stage": "filter",
        "config": conf,
        "input": stable_hash([(f.name, f.stat().st_size) for f in files]),
    }


def run_filter(cfg: FilterConfig, progress=None, log=print) -> FilterSummary:
    if not cfg.input or not cfg.output:
        raise UserError("filter needs an input and an output folder (-o/--output)")
    started = time.monotonic()
    files = list_trace_files(cfg.input)
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
    input_rejects: list[dict] = []
    if todo:
        task = progress.add_task("verifying", total=len(todo)) if progress else None
        with Verifiers(cfg.verify) as verifiers, ProcessPoolExecutor(cfg.workers) as pool:
            for k in todo:
                table, rejects = read_trace_file(files[k])
                input_rejects += rejects
                work_table, stats = _first_pass(table, cfg, verifiers, pool)
                work.seal(k, work_table, {**stats, "input_rejects": len(rejects)})
                log(f"{files[k].name}: {stats['rows']} rows, {stats['rejected']} rejected in the first pass")
                if progress:
                    progress.update(task, advance=1)
    plan = make_plan(_read_keys(out / "work", files, work), cfg)
    counts = _third_pass(out, identity, files, work, plan, cfg, log)
    _write_input_rejects(out, files, input_rejects)
    from distill.filter.report import write_report

    report = write_report(out, counts, plan, cfg)
    manifest = _write_manifest(out, identity, cfg, files, report)
    if not cfg.keep_work:
        shutil.rmtree(out / "work", ignore_errors=True)
    return _summary_from(out, manifest, started, summary.resumed_shards)


# --- pass 1 ------------------------------------------------------------------------------------


def _first_pass(table: pa.Table, cfg: FilterConfig, verifiers: Verifiers, pool) -> tuple[pa.Table, dict]:
    rows = table.to_pylist()
    slim = [{k: r[k] for k in FEATURE_FIELDS} for r in rows]
    futures = [
        pool.submit(features, slim[i : i + CHUNK], cfg.readability, cfg.dedup)
        for i in range(0, len(slim), CHUNK)
    ]
    verdicts = verifiers.verify(rows)  # meanwhile, in the verifiers' own workers
    contaminated = verifiers.decontaminate(rows, cfg.decontaminate)
    checks, lengths, digests, sigs = [], [], [], []
    for fut in futures:
        f = fut.result()
        checks += f["checks"]
        lengths += f["lengths"]
        digests += f["digests"]
        sigs.append(f["signatures"])
    signatures = np.concatenate(sigs) if sigs else np.zeros((0, cfg.dedup.num_perm), np.uint32)
    rejected = 0
    for i, row in enumerate(rows):
        v: Verdict | None = verdicts[i]
        row["verdict"] = v.status if v else None
        row["verdict_reason"] = v.reason if v else None
        stage = reason = None
        if contaminated[i]:
            stage, reason = "decontaminate", contaminated[i]
        elif v is not None and v.status == "fail":
            stage, reason = "verify", f"fail: {v.reason}"
        elif v is not None and v.status == "error" and cfg.verify.on_error == "exclude":
            stage, reason = "verify", f"error: {v.reason}"
        elif checks[i] is not None:
            stage, reason = "readability", f"{checks[i][0]}: {checks[i][1]}"
        row["reject_stage"], row["reject_reason"] = stage, reason
        row["_pref"], row["_digest"] = lengths[i], digests[i]
        row["_sig"] = signatures[i].tobytes()
        rejected += stage is not None
    cols = {f.name: [r.get(f.name) for r in rows] for f in WORK_SCHEMA}
    return pa.Table.from_pydict(cols, schema=WORK_SCHEMA), {"rows": len(rows), "rejected": rejected}


# --- pass 2 ------------------------------------------------------------------------------------


def _read_keys(root: Path, files: list[Path], work: ShardStore) -> Keys:
    keys = Keys()
    cols = ["id", "prompt_id", "verdict", "reject_stage", "_pref", "_digest", "_sig"]
    for k in range(len(files)):
        path = root / _shard_path(work, k)
        t = pq.read_table(path, columns=cols)
        keys.ids += t.column("id").to_pylist()
        keys.prompts += t.column("prompt_id").to_pylist()
        keys.verdicts += t.column("verdict").to_pylist()
        keys.stage1 += t.column("reject_stage").to_pylist()
        keys.lengths += t.column("_pref").to_pylist()
        keys.digests += t.column("_digest").to_pylist()
        keys.signatures += [np.frombuffer(b, dtype=np.uint32) for b in t.column("_sig").to_pylist()]
    return keys


def _shard_path(store: ShardStore, k: int) -> str:
    from distill.shards import shard_name

    return shard_name(k, store.num_shards)


# --- pass 3 ------------------------------------------------------------------------------------


def messages_of(row: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": row["prompt"]},
        {"role": "assistant", "content": assistant_text(row["reasoning"], row["content"])},
    ]


def _third_pass(out: Path, identity, files, work: ShardStore, plan: Plan, cfg: FilterConfig, log) -> dict:
    n = len(files)
    sft = ShardStore(out / "sft", identity, n)
    rej = ShardStore(out / "rejects", identity, n)
    sft.open()
    rej.open()
    counts: dict[str, Any] = {
        "rows": 0,
        "kept": 0,
        "stages": Counter(),
        "reasons": Counter(),
        "verdicts": Counter(),
        "kept_tokens": [],
        "rejected_tokens": [],
    }
    pair_ids = {rid for _, a, b in plan.pairs for rid in (a, b)}
    pair_rows: dict[str, dict] = {}
    for k in range(n):
        table = pq.read_table(out / "work" / _shard_path(work, k))
        kept, dropped = [], []
        for row in table.to_pylist():
            row["pass_rate"] = plan.pass_rates.get(row["prompt_id"])
            if row["reject_stage"] is None and row["id"] in plan.decisions:
                row["reject_stage"], row["reject_reason"] = plan.decisions[row["id"]]
            counts["rows"] += 1
            counts["verdicts"][row["verdict"] or "none"] += 1
            tokens = row["completion_tokens"] if row["completion_tokens"] is not None else row["_pref"]
            if row["reject_stage"] is None:
                row["messages"] = messages_of(row)
                kept.append(row)
                counts["kept_tokens"].append(tokens)
            else:
                dropped.append(row)
                counts["stages"][row["reject_stage"]] += 1
                counts["reasons"][f"{row['reject_stage']}: {row['reject_reason'].split(':')[0]}"] += 1
                counts["rejected_tokens"].append(tokens)
            if row["id"] in pair_ids:
                pair_rows[row["id"]] = row
        counts["kept"] += len(kept)
        if not (sft.is_sealed(k) and rej.is_sealed(k)):
            sft.seal(k, _table(kept, SFT_SCHEMA), {"prompts": len({r["prompt_id"] for r in kept})})
            rej.seal(k, _table(dropped, FILTERED_SCHEMA), {})
    sft.merge()
    rej.merge()
    if plan.pairs:
        _write_pairs(out, identity, plan, pair_rows)
    return counts


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
    source_manifest = Path(cfg.input) / MANIFEST
    doc = {
        "complete": True,
        "identity": identity,
        "input": {
            "path": str(cfg.input),
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
