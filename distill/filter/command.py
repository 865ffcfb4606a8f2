"""`distill filter`: the command (arguments -> config -> stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _per_prompt(value: str | None) -> int | str | None:
    if value is None or value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter("must be a positive number or 'all'") from None


def filter_command(
    input: Annotated[
        str, typer.Argument(help="A folder written by `distill generate`, or trace Parquet/JSONL.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (resumable).")],
    recipe: Annotated[
        Path | None, typer.Option(help="Recipe YAML; its `filter` section sets defaults.")
    ] = None,
    max_per_prompt: Annotated[
        str | None, typer.Option(help="Passing samples kept per prompt, or 'all' [default: 1].")
    ] = None,
    decontaminate: Annotated[
        list[Path] | None,
        typer.Option(help="Benchmark file (JSONL/Parquet with a question column); repeatable."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes for readability, MinHash and writing the outputs [default: CPUs]."),
    ] = None,
    num_workers: Annotated[
        int, typer.Option(min=1, help="Scale out: independent first-pass jobs sharing the input files.")
    ] = 1,
    worker_index: Annotated[
        int, typer.Option(min=0, help="This job's index in [0, num-workers): the input files k % W == I.")
    ] = 0,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="After the W first-pass jobs: plan and write the output here from their work shards.",
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Libraries' logs on the terminal, not in the log file.")
    ] = False,
) -> None:
    """Rejection sampling (math-verify, sandboxed code tests, an LLM judge), readability filters,
    MinHash dedup and decontamination -> sft/, rejects/, report. The libraries' output
    (math-verify's) goes to OUTPUT/logs/filter.log unless --verbose. Many nodes: W jobs with
    --num-workers W --worker-index I run the per-row first pass, then one --merge job the rest."""
    from distill.memory import before_exit, before_imports

    before_imports()  # before anything imports pyarrow or numpy: see distill/memory.py
    from distill.logs import log_note, result, set_verbose, stage_output

    set_verbose(verbose)
    from distill.stages import load_stage_config

    cfg = load_stage_config(
        "filter",
        recipe,
        {
            "output": str(output),
            "select.max_per_prompt": _per_prompt(max_per_prompt),
            "decontaminate.benchmarks": [str(p) for p in decontaminate] if decontaminate else None,
            "workers": workers,
        },
    )
    cfg.input.path = input  # the recipe's `input` section (columns, domain, ...) stays
    # from here on, before any worker process starts: their output goes to the log file too
    if num_workers > 1 and merge:
        raise typer.BadParameter("--merge runs on one node after the workers: leave out --num-workers")
    if worker_index >= num_workers:
        raise typer.BadParameter(f"must be below --num-workers ({num_workers})", param_hint="--worker-index")
    log_name = "filter" if num_workers == 1 else f"filter-worker-{worker_index:05d}"
    with stage_output(log_name, output):
        from distill.verify.dispatch import warm_up

        if not merge:  # a merge verifies nothing
            warm_up(cfg.verify)  # math-verify's workers import it while this process imports the filter
        from distill.filter.run import run_filter
        from distill.memory import tune_for_streaming
        from distill.progress import stage_progress

        tune_for_streaming()  # this process and its workers: see distill/memory.py
        with stage_progress() as (progress, log):
            summary = run_filter(
                cfg,
                progress=progress,
                log=log,
                num_workers=num_workers,
                worker_index=worker_index,
                merge=merge,
            )
    if not summary.complete:  # a first-pass worker
        typer.echo(
            f"first pass of worker {worker_index} of {num_workers}: {summary.input_files} input files, "
            f"{summary.rows} rows in {summary.seconds:.1f} s -> {summary.output / 'work'}\n"
            f"when all {num_workers} workers are done: distill filter {input} -o {output} --merge "
            "(with the same recipe and flags)" + log_note(),
            err=True,
        )
        result(str(summary.output / "work"))
        before_exit()
        return
    width = max(len(f["stage"]) for f in summary.funnel)
    lines = [f"  {f['stage']:<{width}}  -{f['dropped']:<7} {f['rows']:>8} left" for f in summary.funnel]
    typer.echo("funnel:\n" + "\n".join(lines), err=True)
    typer.echo(f"kept {summary.kept} of {summary.rows} rows in {summary.seconds:.1f} s", err=True)
    typer.echo(
        f"SFT set: {summary.output / 'sft'}   rejects: {summary.output / 'rejects'}   "
        f"report: {summary.output / 'report.md'}" + log_note(),
        err=True,
    )
    result(str(summary.output / "sft"))
    before_exit()
