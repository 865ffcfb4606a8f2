"""`distill card DIR`: write a filter or mix output's dataset card again, from its manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def card_command(
    folder: Annotated[Path, typer.Argument(help="A filter output folder (or its sft/), or a mix output.")],
    license: Annotated[
        str | None, typer.Option("--license", help="The set's license (hub name) [default: the card's].")
    ] = None,
    pretty_name: Annotated[str | None, typer.Option(help="The card's title [default: the card's].")] = None,
) -> None:
    """Write the dataset card (README.md beside the shards) again from the folder's manifests and
    report: for a folder made before cards existed, or to set its license."""
    from distill.filter.card import rewrite_cards

    for path in rewrite_cards(folder, license, pretty_name, log=lambda m: typer.echo(m, err=True)):
        typer.echo(str(path))
