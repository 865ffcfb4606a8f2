"""The `filter` section of a recipe."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator

from distill.config import StrictModel
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


class FilterConfig(StrictModel):
    input: str | None = Field(None, description="A `distill generate` folder, or trace Parquet/JSONL.")
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
