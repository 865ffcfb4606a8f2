"""`distill data ...`: write small built-in problem sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def arithmetic_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    n: Annotated[int, typer.Option("--n", help="Training problems.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same bytes.")] = 0,
    heldout: Annotated[int, typer.Option(help="Held-out problems (no text shared with training).")] = 100,
) -> None:
    """Easy arithmetic word problems (sums, take-aways, small products): DIR/train.jsonl, DIR/heldout.jsonl."""
    from distill.data.arithmetic import write_arithmetic

    info = write_arithmetic(output, n=n, seed=seed, heldout=heldout)
    for name, f in info["files"].items():
        typer.echo(f"{output / name}: {f['rows']} problems", err=True)
    typer.echo(str(output))
