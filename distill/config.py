"""Recipes: YAML files validated against typed configs; command-line flags override their values.

A recipe has one section per stage (`generate`, `filter`, `train`, ...). Each section is the
config model of that stage, defined beside the stage (`distill/<stage>/config.py`); this module
only loads, merges and validates. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from distill.errors import UserError


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigError(UserError):
    """A recipe or flag that does not validate; the message is meant for the user as is."""


# stage name in a recipe -> "module:Class" of its config model (imported lazily).
STAGES: dict[str, str] = {
    "generate": "distill.generate.config:GenerateConfig",
    "filter": "distill.filter.config:FilterConfig",
    "mix": "distill.filter.mix:MixConfig",
    "eval": "distill.eval.config:EvalConfig",
    "train": "distill.train.config:TrainConfig",
    "run": "distill.pipeline:RunConfig",
}


def stage_model(stage: str) -> type[BaseModel]:
    module, _, name = STAGES[stage].partition(":")
    return getattr(importlib.import_module(module), name)


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of stage sections")
    unknown = [k for k in data if k not in STAGES and k not in ("name", "description")]
    if unknown:
        raise ConfigError(f"{path}: unknown recipe section {unknown[0]!r} (known: {', '.join(STAGES)})")
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def format_validation_error(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key {loc!r}")
        else:
            lines.append(f"{where}: {loc}: {err['msg']}")
    return "\n".join(lines)


def load_stage_config(
    stage: str, recipe: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Any:
    """The validated config of `stage`: model defaults < recipe section < flags (dotted keys)."""
    data: dict[str, Any] = {}
    where = f"{stage} config"
    if recipe is not None:
        section = read_recipe(recipe).get(stage) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{recipe}: section {stage!r} must be a mapping")
        data = section
        where = f"{recipe} [{stage}]"
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    try:
        return stage_model(stage).model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None


def validate_recipe(path: str | Path) -> dict[str, Any]:
    """Validate every section of a recipe; returns the validated configs by stage."""
    data = read_recipe(path)
    out = {}
    for stage in STAGES:
        if stage in data:
            out[stage] = load_stage_config(stage, path)
    return out
