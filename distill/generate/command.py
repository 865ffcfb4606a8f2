"""`distill generate`: the command (arguments -> config -> stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def generate_command(
    input: Annotated[
        str, typer.Argument(help="Problems: JSONL, Parquet, a folder of them, or a datasets folder.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (resumable).")],
    recipe: Annotated[
        Path | None, typer.Option(help="Recipe YAML; its `generate` section sets defaults.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Teacher: hub id, local folder, or 'smollm2-135m'.")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="vllm (local engine) or openai (an endpoint).")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://host:8000/v1")
    ] = None,
    num_samples: Annotated[int | None, typer.Option(help="Samples per prompt [default: 4].")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Most new tokens per sample [default: 32768].")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="[default: 0.6]")] = None,
    top_p: Annotated[float | None, typer.Option(help="[default: 0.95]")] = None,
    shard_size: Annotated[int | None, typer.Option(help="Prompts per shard [default: 512].")] = None,
    num_workers: Annotated[
        int | None, typer.Option(help="Independent jobs sharing this input [default: 1].")
    ] = None,
    worker_index: Annotated[int | None, typer.Option(help="This job's index in [0, num-workers).")] = None,
    problem_column: Annotated[
        str | None, typer.Option(help="Input column holding the problem [default: problem].")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N valid prompts.")] = None,
    tensor_parallel_size: Annotated[int | None, typer.Option(help="GPUs per vLLM engine.")] = None,
    data_parallel_size: Annotated[int | None, typer.Option(help="vLLM engines on this machine.")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Libraries' logs on the terminal, not in the log file.")
    ] = False,
) -> None:
    """Sample teacher reasoning traces into sharded Parquet; rerun the same command to resume.
    The libraries' output (vLLM's) goes to OUTPUT/logs/generate.log unless --verbose."""
    from distill.logs import log_note, result, set_verbose, stage_output

    set_verbose(verbose)
    from distill.generate.run import REJECTS, run_generate
    from distill.progress import stage_progress
    from distill.stages import load_stage_config

    cfg = load_stage_config(
        "generate",
        recipe,
        {
            "input.path": input,
            "output": str(output),
            "teacher.model": model,
            "teacher.backend": backend,
            "teacher.base_url": base_url,
            "sampling.num_samples": num_samples,
            "sampling.max_tokens": max_tokens,
            "sampling.temperature": temperature,
            "sampling.top_p": top_p,
            "shard_size": shard_size,
            "num_workers": num_workers,
            "worker_index": worker_index,
            "input.columns.problem": problem_column,
            "input.limit": limit,
            "teacher.tensor_parallel_size": tensor_parallel_size,
            "teacher.data_parallel_size": data_parallel_size,
        },
    )
    if cfg.teacher.data_parallel_size > 1 and cfg.teacher.backend == "vllm":
        from distill.generate.parallel import run_data_parallel

        # each child worker is a `distill generate` of its own, with its own log file
        complete = run_data_parallel(cfg, log=lambda m: typer.echo(m, err=True))
        typer.echo(f"traces: {cfg.output} ({'complete' if complete else 'incomplete'})", err=True)
        result(str(cfg.output))
        return
    name = "generate" if cfg.num_workers == 1 else f"generate-worker-{cfg.worker_index:05d}"
    with stage_output(name, cfg.output), stage_progress() as (progress, log):
        summary = run_generate(cfg, progress=progress, log=log)
    typer.echo(
        f"{summary.prompts} prompts ({summary.rejected_rows} input rows rejected), "
        f"{summary.shards_written} shards written, {summary.shards_skipped} already sealed, "
        f"{summary.samples_written} samples, {summary.tokens_written} tokens in {summary.seconds:.1f} s",
        err=True,
    )
    if summary.rejected_rows:
        typer.echo(f"rejected rows and reasons: {summary.output / REJECTS}", err=True)
    if summary.failed_requests:
        typer.echo(
            f"{len(summary.failed_requests)} requests failed; their shards were not written. "
            "Run the same command again to retry them.",
            err=True,
        )
        raise typer.Exit(1)
    state = "complete" if summary.complete else "this worker's shards are done; others are pending"
    typer.echo(f"traces: {summary.output} ({state})" + log_note(), err=True)
    result(str(summary.output))
