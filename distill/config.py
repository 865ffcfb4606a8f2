"""Recipes: YAML files validated against typed configs; command-line flags override their values.

A recipe has one section per stage (`generate`, `filter`, `train`, ...). Each section is the
config model of that stage, defined beside the stage (`distill/<stage>/config.py`); this module
only loads, merges and validates, and knows no stage: the stages are registered from above, in
`distill/stages.py`, which hands the section names and models in. Unknown keys are errors that
name the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from distill.errors import UserError


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigError(UserError):
    """A recipe or flag that does not validate; the message is meant for the user as is."""


M = TypeVar("M", bound=BaseModel)


def read_recipe(path: str | Path, sections: Iterable[str] | None = None) -> dict[str, Any]:
    """A recipe's sections; with `sections`, any other section (but `name`, `description`) is an error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of stage sections")
    if sections is not None:
        known = list(sections)
        unknown = [k for k in data if k not in known and k not in ("name", "description")]
        if unknown:
            raise ConfigError(f"{path}: unknown recipe section {unknown[0]!r} (known: {', '.join(known)})")
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


def load_section(
    model: type[M],
    stage: str,
    recipe: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    sections: Iterable[str] | None = None,
) -> M:
    """The recipe section `stage` validated as `model`: model defaults < recipe section < flags
    (dotted keys). `sections`: every section a recipe may have (see `read_recipe`)."""
    data: dict[str, Any] = {}
    where = f"{stage} config"
    if recipe is not None:
        section = read_recipe(recipe, sections).get(stage) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{recipe}: section {stage!r} must be a mapping")
        data = section
        where = f"{recipe} [{stage}]"
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None
