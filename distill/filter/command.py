"""`distill filter`: the command (arguments -> config -> stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def filter_command(
    input: Annotated[
        Path, typer.Argument(help="A folder written by `distill generate`, or trace Parquet/JSONL.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    recipe: Annotated[Path | None, typer.Option(help="Recipe YAML (its `filter` section).")] = None,
) -> None:
    """Rejection sampling, readability filters, dedup and decontamination -> SFT set."""
    typer.echo("distill filter: not implemented yet", err=True)
    raise typer.Exit(3)
