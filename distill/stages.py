"""The stages a recipe can name, each with its config model: the registry that the ground-floor
`distill.config` does not hold. It sits above the stage packages (it imports each one's config
model, lazily, so `distill --help` stays instant) and below `distill.pipeline`; the stages never
import it, only their CLI commands do.

A new stage adds its section here (`SECTIONS`, `stage_model`) and a command in `distill/cli.py`;
`distill run` learns its place in `distill/pipeline.py` (`ORDER`, `_wire`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from distill.config import StrictModel, load_section
from distill.config import read_recipe as read_sections
from distill.cost import Prices

# every section a recipe may have (besides `name` and `description`), in the order they validate
SECTIONS = ("generate", "filter", "mix", "eval", "train", "run")


class RunConfig(StrictModel):
    """The recipe's `run` section: how `distill run` strings the stages together."""

    output: str | None = Field(None, description="The run folder (default: runs/<recipe name>).")
    stages: list[str] | None = Field(
        None, description="Stages to run, in order (default: every section present)."
    )
    baseline: str | None = Field(
        None, description="Also evaluate this model (e.g. the student before training) and compare."
    )
    cost: Prices | None = Field(
        None,
        description="Prices (per million input/output tokens, per accelerator-hour): `distill run` shows "
        "each stage's cost and the run's, and gives them to generate (generate.cost) unless it has its own.",
    )
    train_launcher: str | None = Field(
        None,
        description="Command that launches the train stage on many GPUs, e.g. 'accelerate launch "
        "--config_file recipes/accelerate/zero3.yaml' (it gets `-m distill.cli train-student ...`).",
    )


def stage_model(stage: str) -> type[BaseModel]:
    """The config model of a recipe section (its module is imported on first use)."""
    if stage == "generate":
        from distill.generate.config import GenerateConfig

        return GenerateConfig
    if stage == "filter":
        from distill.filter.config import FilterConfig

        return FilterConfig
    if stage == "mix":
        from distill.filter.mix import MixConfig

        return MixConfig
    if stage == "eval":
        from distill.eval.config import EvalConfig

        return EvalConfig
    if stage == "train":
        from distill.train.config import TrainConfig

        return TrainConfig
    if stage == "run":
        return RunConfig
    raise KeyError(stage)


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe's sections; a section that is not a stage's is an error."""
    return read_sections(path, SECTIONS)


def load_stage_config(
    stage: str, recipe: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Any:
    """The validated config of `stage`: model defaults < recipe section < flags (dotted keys)."""
    return load_section(stage_model(stage), stage, recipe, overrides, SECTIONS)


def validate_recipe(path: str | Path) -> dict[str, Any]:
    """Validate every section of a recipe; returns the validated configs by stage."""
    data = read_recipe(path)
    return {stage: load_stage_config(stage, path) for stage in SECTIONS if stage in data}
