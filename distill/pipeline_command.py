"""`distill run RECIPE`: every stage of a recipe, in order, skipping what is up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def run_command(
    recipe: Annotated[
        Path, typer.Argument(help="Recipe YAML with stage sections (generate, filter, train, eval).")
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Run folder [default: runs/<name>].")
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Libraries' logs on the terminal, not in RUN/logs/<stage>.log."),
    ] = False,
) -> None:
    """Run a whole recipe: generate -> filter -> train-student -> eval, each in its own folder.
    Stages whose inputs and config are unchanged are skipped; changed ones are redone. Each
    stage's library output (vLLM, transformers, ...) goes to RUN/logs/<stage>.log; the run ends
    with a summary of every stage: time, counts in and out, outputs."""
    from distill.logs import set_verbose
    from distill.pipeline import run_pipeline

    set_verbose(verbose)
    run = run_pipeline(recipe, output, log=lambda m: typer.echo(m, err=True))
    typer.echo(str(run))
