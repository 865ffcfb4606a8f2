"""`distill manifest DIR`: merge worker manifests of a sharded output folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def manifest_command(
    folder: Annotated[Path, typer.Argument(help="An output folder written by W workers.")],
) -> None:
    """Merge the worker manifests of a folder into manifest.json once every shard is sealed."""
    from distill.shards import merge_manifests

    doc = merge_manifests(folder)
    if doc is None:
        typer.echo(f"{folder}: not every shard is sealed yet; manifest.json not written", err=True)
        raise typer.Exit(1)
    typer.echo(f"{folder / 'manifest.json'}: {doc['totals']}")
