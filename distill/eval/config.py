"""The `eval` section of a recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from distill.config import StrictModel
from distill.engines.config import EngineConfig
from distill.generate.config import SamplingConfig
from distill.inputs import ColumnMap
from distill.prompts import PromptConfig
from distill.verify.config import VerifyConfig


class BenchmarkConfig(StrictModel):
    path: str = Field(description="JSONL/Parquet with a problem and an answer (or tests for code).")
    name: str | None = Field(None, description="Name in the results (default: the file name).")
    columns: ColumnMap = Field(default_factory=ColumnMap)
    answer_format: Literal["plain", "gsm8k"] = "plain"
    tests_format: Literal["json", "humaneval"] = "json"
    domain: Literal["math", "code", "science", "general"] = "math"
    skip: int = Field(0, ge=0, description="Skip the first N problems (e.g. those used for training).")
    limit: int | None = Field(None, ge=1, description="Use only N problems.")
    template: str | None = Field(None, description="User-turn template for this benchmark, with {problem}.")

    @property
    def display_name(self) -> str:
        return self.name or Path(self.path).name.split(".")[0]


class EvalConfig(StrictModel):
    model: EngineConfig = Field(default_factory=EngineConfig, description="The model evaluated.")
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list)
    output: str | None = None
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="R1: 0.6 / 0.95, k samples.")
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    k: list[int] = Field(
        default_factory=lambda: [1], description="pass@k values reported (k <= num_samples)."
    )
    shard_size: int = Field(256, ge=1)
