"""`distill train-student`: the command (arguments -> config -> stage).

    distill train-student DATA -o DIR [--recipe FILE] [--model M] [--max-length L]
                          [--epochs E | --max-steps N] [--lora] [--resume] [--prepare-only]

Multi-GPU / multi-node, same code: prefix with
    accelerate launch --config_file recipes/accelerate/zero3.yaml -m distill.cli train-student ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def train_student_command(
    data: Annotated[
        Path, typer.Argument(help="The sft/ folder of `distill filter`, or Parquet/JSONL with `messages`.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (becomes the model folder).")],
    recipe: Annotated[Path | None, typer.Option(help="Recipe YAML (its `train` section).")] = None,
    model: Annotated[
        str | None, typer.Option(help="Student: a model folder, hub id or 'smollm2-135m' (the default).")
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(help="Most tokens per conversation; longer rows are dropped (default 16384)."),
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data (default 3).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps to run instead of --epochs.")] = None,
    lora: Annotated[
        bool, typer.Option("--lora", help="Train a LoRA adapter (merged into the output too).")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint in --output.")
    ] = False,
    prepare_only: Annotated[
        bool,
        typer.Option(
            "--prepare-only",
            help="Read and tokenize the data into OUTPUT/.tokenized/, then stop (no model is loaded); "
            "a later run into OUTPUT starts from it.",
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Libraries' logs on the terminal, not in the log file.")
    ] = False,
) -> None:
    """Supervised fine-tuning of a student on the filtered set (TRL SFTTrainer, accelerate). The
    libraries' output goes to OUTPUT/logs/train.log unless --verbose."""
    from distill.errors import UserError
    from distill.logs import log_note, result, set_verbose, stage_output

    set_verbose(verbose)

    if epochs is not None and max_steps is not None:
        raise UserError("pass either --epochs or --max-steps, not both")
    config = load_train_config(
        recipe,
        {
            "data": str(data),
            "output": str(output),
            "model": model,
            "max_length": max_length,
            "epochs": epochs,
            "max_steps": max_steps,
            "lora": True if lora else None,
            "resume": True if resume else None,
        },
    )
    if epochs is not None:  # --epochs wins over a recipe's max_steps
        config.max_steps = None

    import contextlib
    import os

    from distill.progress import stage_progress

    with stage_output("train", output):
        from distill.train.run import train

        main_process = os.environ.get("RANK", "0") == "0"  # under `accelerate launch`: one progress
        with stage_progress() if main_process else contextlib.nullcontext():
            if prepare_only:
                from distill.train.run import prepare_only as prepare_data

                prepared = prepare_data(config)
                manifest = {}
            else:
                manifest = train(config)
    if prepare_only:
        if main_process:
            typer.echo(
                f"{output}: prepared {prepared['rows_kept']} rows ({prepared['tokens']} tokens), "
                f"dropped rows {prepared['dropped']}" + log_note(),
                err=True,
            )
            result(str(output))
        return
    if manifest:
        steps = manifest["training"]
        loss = steps.get("train_loss")
        typer.echo(
            f"{output}: {steps['global_step']} steps"
            + (f", loss {loss:.4f}" if isinstance(loss, int | float) else "")
            + f", dropped rows {manifest['data']['dropped']}"
            + log_note(),
            err=True,
        )
        result(str(output))


def load_train_config(recipe: Path | None, overrides: dict[str, Any]) -> Any:
    """The recipe's `train` section with the flags on top (flags left unset keep the recipe's values)."""
    from distill.stages import load_stage_config

    return load_stage_config("train", recipe, overrides)
