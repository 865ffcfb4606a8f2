"""`distill eval`: the command (arguments -> config -> stage), and `--compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def eval_command(
    model: Annotated[
        str | None,
        typer.Argument(help="Model: hub id, folder (e.g. a train-student output), or 'smollm2-135m'."),
    ] = None,
    benchmark: Annotated[
        list[str] | None, typer.Option("--benchmark", help="Benchmark file; repeatable.")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output folder (resumable).")] = None,
    recipe: Annotated[
        Path | None, typer.Option(help="Recipe YAML; its `eval` section sets defaults.")
    ] = None,
    num_samples: Annotated[int | None, typer.Option(help="Samples per problem (k) [default: 4].")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Most new tokens per sample [default: 32768].")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="vllm (local engine) or openai (an endpoint).")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint for --backend openai.")
    ] = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(
            help="Print two results side by side: --compare DIR_A DIR_B (folders or results.json files), "
            "with B - A of pass@1 and its paired 95% interval over the problems both hold."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Libraries' logs on the terminal, not in the log file.")
    ] = False,
) -> None:
    """Evaluate a model on reasoning benchmarks: pass@1 over k samples (with a 95% interval over
    problems), pass@k, cons@k. The libraries' output goes to OUTPUT/logs/eval.log unless --verbose."""
    from rich.console import Console

    from distill.logs import log_note, set_verbose, stage_output

    set_verbose(verbose)

    from distill.eval.report import comparison_table, paired_table, results_table
    from distill.eval.run import load_results

    console = Console()
    if compare:
        a, b = (load_results(p) for p in compare)
        console.print(comparison_table(a, b, str(compare[0]), str(compare[1])))
        console.print(paired_table(a, b))
        return
    from distill.errors import UserError
    from distill.eval.run import run_eval
    from distill.progress import stage_progress
    from distill.stages import load_stage_config

    overrides = {
        "model.model": model,
        "model.backend": backend,
        "model.base_url": base_url,
        "output": str(output) if output else None,
        "sampling.num_samples": num_samples,
        "sampling.max_tokens": max_tokens,
    }
    cfg = load_stage_config("eval", recipe, overrides)
    if benchmark:
        known = {b.path: b for b in cfg.benchmarks}
        from distill.eval.config import BenchmarkConfig

        cfg.benchmarks = [known.get(p) or BenchmarkConfig(path=p) for p in benchmark]
    if model is None and recipe is None:
        raise UserError("name a MODEL to evaluate (or --compare DIR_A DIR_B)")
    with stage_output("eval", cfg.output), stage_progress() as (progress, log):
        results = run_eval(cfg, progress=progress, log=log)
    console.print(results_table(results))
    typer.echo(
        f"results: {Path(cfg.output) / 'results.json'}" + log_note(),
        err=True,
    )
