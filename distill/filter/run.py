"""The filter stage: traces -> verdicts -> readability -> dedup -> selection -> SFT set + rejects.

This module is the stage itself: its identity (config + input files), the resume, the manifest and
the order of its passes, each in its own module:
1. `first_pass.py`, per input file (streamed): decontamination, verification (math / code / judge
   by domain), readability and the per-row dedup features (`features.py`) of the rows still
   standing, sealed as a work shard (`work.py`). Inputs are read by `read.py` (the Parquet fast
   paths) and `traces.py` (foreign trace shapes, column mapping).
2. `plan.py`, in memory, from the work shards' small columns only: pass rates, difficulty band,
   dedup, selection, pairs; `report.py` counts and draws the report from the same columns.
3. `output.py`, per work shard, in the worker processes: every row to `sft/` (kept, with
   `messages`) or `rejects/` (with its stage and reason), and `pairs/`.
Each pass is resumable (sealed shards are kept). Same input + same config = same output.
Scaled out (docs/scaling.md#filter): `num_workers` W > 1 runs pass 1 alone, of the input files
k % W == `worker_index`; then `merge` runs passes 2 and 3 from every worker's work shards.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill import kernels
from distill.errors import UserError
from distill.filter.config import FilterConfig
from distill.filter.first_pass import first_pass
from distill.filter.output import write_input_rejects, write_outputs
from distill.filter.plan import make_plan
from distill.filter.report import count_rows, write_report
from distill.filter.traces import list_trace_files
from distill.filter.work import (
    FilterRun,
    input_counts,
    input_reject_rows,
    load_work,
    mark_repeated_ids,
    read_keys,
)
from distill.memory import die_with_parent
from distill.provenance import atomic_write_text, git_commit, package_versions, sha256_file, utc_now
from distill.schema import stable_hash
from distill.shards import MANIFEST, WORKER_DIR, ShardStore, shard_name


@dataclass
class FilterSummary:
    output: Path
    rows: int = 0
    kept: int = 0
    funnel: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_shards: int = 0
    complete: bool = True  # False: a first-pass worker's part (`--num-workers`), to be merged
    input_files: int = 0  # a first-pass worker's input files


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


def _start_worker(parent: int, warm: bool) -> None:
    """A feature worker's initializer: die with `parent`; load the compiled kernels if `warm`."""
    die_with_parent(parent)
    if warm:
        kernels.warm()


def run_filter(
    cfg: FilterConfig,
    progress: Any = None,
    log: Callable[[str], None] = print,
    *,
    num_workers: int = 1,
    worker_index: int = 0,
    merge: bool = False,
) -> FilterSummary:
    """The filter stage: `cfg.input` -> `cfg.output` (sft/, rejects/, pairs/, report, manifest),
    resumed where an earlier run into the same folder stopped; nothing to do when it is complete.
    `progress`: a `distill.progress` display, or None.

    Scaled out: with `num_workers` W > 1, only the first pass (the per-row work) of the input files
    k with k % W == `worker_index`, into `output/work` (`complete` is False in the summary); then
    `merge`: the plan and the outputs from every worker's work shards, on one node (a UserError
    names the workers whose shards are missing). The output is the same as one process's."""
    if not cfg.input.path or not cfg.output:
        raise UserError("filter needs an input and an output folder (-o/--output)")
    if not 0 <= worker_index < num_workers:
        raise UserError(f"--worker-index {worker_index} must be in [0, --num-workers {num_workers})")
    if merge and num_workers > 1:
        raise UserError(
            "--merge plans and writes on one node from every worker's first pass: "
            "leave out --num-workers and --worker-index"
        )
    started = time.monotonic()
    files = list_trace_files(cfg.input.path)
    out = Path(cfg.output)
    identity = identity_of(cfg, files)
    done = _complete_manifest(out, identity)
    if done is not None:
        log(f"{out} is complete for this input and config; nothing to do")
        return _summary_from(out, done, started)
    if num_workers > 1:
        return _first_pass_worker(
            cfg, out, identity, files, num_workers, worker_index, progress, log, started
        )
    if merge:
        work = load_work(out, identity, files)  # every shard sealed, or a UserError naming the missing
        todo = []
    else:
        work = ShardStore(out / "work", identity, len(files))
        work.open()
        todo = [k for k in range(len(files)) if not work.is_sealed(k)]
    summary = FilterSummary(out, resumed_shards=len(files) - len(todo))
    if summary.resumed_shards and not merge:
        log(f"resuming: {summary.resumed_shards} of {len(files)} input files already processed")
    # the workers load the compiled kernels themselves, as they start (on the first submit), while
    # this process verifies the first file: its startup is single-threaded, so the other core is
    # free (17 alternated pairs of runs: wall -6% against loading them here before forking)
    warm = bool(todo) and (cfg.dedup.exact or cfg.dedup.near or cfg.readability.repetition)
    with ProcessPoolExecutor(cfg.workers, initializer=_start_worker, initargs=(os.getpid(), warm)) as pool:
        run = FilterRun(cfg, out, identity, files, work, pool, log, progress)
        if todo:
            first_pass(run, todo)
        keys = read_keys(work, files, cfg.dedup.num_perm, problems=cfg.dedup.prompts)
        if merge or _from_workers(work):  # ids repeated across the workers' files
            marked = mark_repeated_ids(keys, work, files)
            if marked:
                log(f"{marked} rows repeat the id of a row in another worker's input file: input rejects")
        plan = make_plan(keys, cfg)
        input_rejects = input_reject_rows(work, len(files))
        counts = count_rows(keys, plan, input_rejects)
        counts.update(input_counts(work, len(files)))
        if not counts["rows"]:
            log(f"warning: {cfg.input.path} has no trace rows: the output is empty")
        if counts["no_answer_column"] and cfg.verify.domains.get("math") == "math":
            log(
                f"warning: {counts['no_answer_column']} rows have no gold answer (no answer column): "
                "those the math verifier checks get `error: no gold answer`; for a set without golds, "
                "map `verify.domains: {math: none}` in the recipe"
            )
        # the plots take seconds of CPU: drawn here while the workers write sft/ and rejects/
        report = write_outputs(run, keys, plan, meanwhile=lambda: write_report(out, counts, plan, cfg))
    write_input_rejects(out, input_rejects)
    manifest = _write_manifest(out, identity, cfg, files, report)
    if not cfg.keep_work:
        shutil.rmtree(out / "work", ignore_errors=True)
    return _summary_from(out, manifest, started, summary.resumed_shards)


def _first_pass_worker(
    cfg: FilterConfig,
    out: Path,
    identity: dict[str, Any],
    files: list[Path],
    num_workers: int,
    worker_index: int,
    progress: Any,
    log: Callable[[str], None],
    started: float,
) -> FilterSummary:
    """Worker `worker_index` of `num_workers`: the first pass of its input files into out/work,
    with its own manifest there (work/manifests/worker-IIIII-of-WWWWW.json)."""
    work = ShardStore(out / "work", identity, len(files), worker_index, num_workers)
    work.open()  # refuses a folder whose other workers ran with another input or config
    mine = [k for k in range(len(files)) if k % num_workers == worker_index]
    todo = [k for k in mine if not work.is_sealed(k)]
    summary = FilterSummary(out, resumed_shards=len(mine) - len(todo), complete=False)
    if summary.resumed_shards:
        log(f"resuming: {summary.resumed_shards} of this worker's {len(mine)} input files already processed")
    if todo:
        warm = cfg.dedup.exact or cfg.dedup.near or cfg.readability.repetition
        with ProcessPoolExecutor(
            cfg.workers, initializer=_start_worker, initargs=(os.getpid(), warm)
        ) as pool:
            first_pass(FilterRun(cfg, out, identity, files, work, pool, log, progress), todo)
    summary.rows = sum(work.shards[shard_name(k, len(files))]["rows"] for k in mine)
    summary.input_files = len(mine)
    summary.seconds = time.monotonic() - started
    return summary


def _from_workers(work: ShardStore) -> bool:
    """Whether first-pass workers (`--num-workers` > 1) sealed some of the work shards."""
    return any(not p.name.endswith("-of-00001.json") for p in (work.root / WORKER_DIR).glob("worker-*.json"))


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


def _write_manifest(
    out: Path, identity: dict[str, Any], cfg: FilterConfig, files: list[Path], report: dict[str, Any]
) -> dict:
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
        "finished_at": utc_now(),
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
