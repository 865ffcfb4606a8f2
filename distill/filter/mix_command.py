"""`distill mix`: combine filtered sets by ratio into one shuffled SFT set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def mix_command(
    recipe: Annotated[
        Path, typer.Option(help="Recipe YAML with a `mix` section (sources and counts or weights).")
    ],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output folder.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling and shuffling seed [default: 0].")] = None,
) -> None:
    """Mix several SFT sets by ratio (e.g. 600k reasoning : 200k non-reasoning) into one shuffled set."""
    from distill.filter.mix import run_mix
    from distill.stages import load_stage_config

    cfg = load_stage_config("mix", recipe, {"output": str(output) if output else None, "seed": seed})
    run_mix(cfg, log=lambda m: typer.echo(m, err=True))
    typer.echo(str(cfg.output))
