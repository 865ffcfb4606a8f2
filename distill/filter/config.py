"""The `filter` section of a recipe."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from distill.config import StrictModel
from distill.cost import Prices
from distill.filter.card import CardConfig
from distill.filter.decontam import DecontamConfig
from distill.filter.dedup import DedupConfig
from distill.filter.readability import ReadabilityConfig
from distill.verify.config import VerifyConfig


class SelectConfig(StrictModel):
    max_per_prompt: int | Literal["all"] = Field(
        1, description="Passing samples kept per prompt (1 for an R1-style set), or 'all'."
    )
    rule: Literal["shortest", "random"] = Field(
        "shortest", description="Which samples of a prompt are kept: the shortest, or random (seeded)."
    )
    seed: int = 0
    difficulty: tuple[float, float] | None = Field(
        None, description="Keep only prompts whose pass rate lies in [lo, hi], e.g. [0.1, 0.9]."
    )
    preference_pairs: bool = Field(
        False,
        description="Also write pairs/ : a passing (chosen) and a failing (rejected) sample per prompt.",
    )

    @field_validator("max_per_prompt")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("max_per_prompt must be >= 1 or 'all'")
        return value

    @field_validator("difficulty")
    @classmethod
    def _band(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not (0 <= value[0] <= value[1] <= 1):
            raise ValueError("difficulty must be [lo, hi] with 0 <= lo <= hi <= 1")
        return value


class TraceColumns(StrictModel):
    """Which input column holds each trace field (docs/data.md), for trace sets made by other tools
    (OpenR1-Math's `generations` is the completion, a `question` column the problem, ...). Unset: the
    field's own name, and for `completion` also `generations`, for `finish_reason` also
    `finish_reasons`. A column of lists (one element per sample) is one row per element."""

    id: str | None = None
    prompt_id: str | None = None
    sample_index: str | None = None
    problem: str | None = None
    answer: str | None = None
    tests: str | None = None
    domain: str | None = None
    source: str | None = None
    prompt: str | None = None
    reasoning: str | None = None
    content: str | None = None
    completion: str | None = None
    finish_reason: str | None = None
    prompt_tokens: str | None = None
    completion_tokens: str | None = None
    teacher: str | None = None
    sampling: str | None = None


class FilterInput(StrictModel):
    """What `distill filter` reads and how its columns map to trace fields. A recipe may give just the
    path (`input: runs/x/traces`, the older form); the command's INPUT argument sets `path`."""

    path: str | None = Field(None, description="A `distill generate` folder, or trace Parquet/JSONL.")
    columns: TraceColumns = Field(
        default_factory=TraceColumns,
        description="Trace field -> input column, e.g. {completion: generations, problem: question}.",
    )
    conversations: str | None = Field(
        None,
        description="Column holding a chat (list of {from, value} or {role, content} turns) to take the "
        "prompt and the completion from when there is no completion column (unset: `conversations`, "
        "else `messages`).",
    )
    domain: Literal["math", "code", "science", "general"] = Field(
        "math", description="Domain of rows that have no domain column."
    )
    source: str | None = Field(None, description="Source of rows that have none (default: null).")
    teacher: str | None = Field(None, description="Teacher of rows that have none (default: 'unknown').")

    @model_validator(mode="before")
    @classmethod
    def _path_only(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    def mapping(self) -> dict[str, Any]:
        """The settings other than `path` that differ from the defaults (empty: a trace file of
        docs/data.md is read as it is)."""
        out: dict[str, Any] = {}
        columns = {k: v for k, v in self.columns.model_dump().items() if v is not None}
        if columns:
            out["columns"] = columns
        for name in ("conversations", "domain", "source", "teacher"):
            value = getattr(self, name)
            if value != type(self).model_fields[name].default:
                out[name] = value
        return out

    @model_serializer(mode="wrap")
    def _as_path(self, handler) -> Any:
        # without a mapping, the path alone, as before the section existed (manifests, resolved recipes)
        return handler(self) if self.mapping() else self.path


class FilterConfig(StrictModel):
    input: FilterInput = Field(
        default_factory=FilterInput,
        description="A `distill generate` folder or trace Parquet/JSONL (a path), or a section: path, "
        "columns, conversations, domain, source, teacher.",
    )
    output: str | None = Field(None, description="Output folder.")
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    readability: ReadabilityConfig = Field(default_factory=ReadabilityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: DecontamConfig = Field(default_factory=DecontamConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Processes for readability, MinHash and writing sft/ and rejects/.",
    )
    keep_work: bool = Field(False, description="Keep the intermediate work/ folder after a complete run.")
    # not part of the output's identity (exclude: not in the manifest's config either): a new
    # license rewrites no row; the card records it
    cost: Prices | None = Field(
        None,
        exclude=True,
        description="Prices of the teacher's spending for the report's cost lines; by default those "
        "the generate folder recorded (generate.cost). Not part of the output's identity.",
    )
    card: CardConfig = Field(
        default_factory=CardConfig,
        exclude=True,
        description="The dataset card (sft/README.md, pairs/README.md): license, pretty_name.",
    )
