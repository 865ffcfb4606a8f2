"""The `generate` section of a recipe."""

from __future__ import annotations

from pydantic import Field

from distill.config import StrictModel
from distill.engines.config import EngineConfig
from distill.inputs import InputConfig
from distill.prompts import PromptConfig


class SamplingConfig(StrictModel):
    num_samples: int = Field(4, ge=1, description="Samples per prompt (vLLM's n).")
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int | None = Field(None, description="Off by default, as in the R1 recipe.")
    max_tokens: int = Field(32768, ge=1, description="Most new tokens per sample.")
    seed: int = Field(0, description="Engine seed.")
    ignore_eos: bool = Field(False, description="Benchmarks only: always generate max_tokens tokens.")


class GenerateConfig(StrictModel):
    input: InputConfig = Field(default_factory=InputConfig)
    output: str | None = Field(None, description="Output folder.")
    teacher: EngineConfig = Field(default_factory=EngineConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    shard_size: int = Field(512, ge=1, description="Prompts per Parquet shard (the unit of resume).")
    num_workers: int = Field(1, ge=1, description="Independent jobs sharing the input (scale-out).")
    worker_index: int = Field(0, ge=0, description="This job's index in [0, num_workers).")
    journal_flush_seconds: float = Field(
        2.0,
        ge=0,
        description="How often finished requests of unsealed shards are written to the journal: "
        "the most a SIGKILL can lose besides the requests in flight (0: after every request).",
    )
