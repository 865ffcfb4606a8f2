"""The `generate` section of a recipe."""

from __future__ import annotations

from pydantic import Field, model_validator

from distill.config import StrictModel
from distill.cost import Prices
from distill.engines.config import EngineConfig
from distill.inputs import InputConfig
from distill.prompts import PromptConfig
from distill.verify.config import VerifyConfig


class SamplingConfig(StrictModel):
    num_samples: int = Field(4, ge=1, description="Samples per prompt (vLLM's n).")
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int | None = Field(None, description="Off by default, as in the R1 recipe.")
    max_tokens: int = Field(32768, ge=1, description="Most new tokens per sample.")
    seed: int = Field(0, description="Engine seed.")
    ignore_eos: bool = Field(False, description="Benchmarks only: always generate max_tokens tokens.")
    until_pass: int | None = Field(
        None,
        ge=1,
        description="Adaptive rejection sampling: sample each prompt in rounds of num_samples, verify each "
        "round as it returns (generate.verify), and stop once the prompt has this many passing samples "
        "(or max_samples). Off (null): num_samples for every prompt.",
    )
    max_samples: int | None = Field(
        None, ge=1, description="Adaptive sampling: most samples per prompt (a multiple of num_samples)."
    )

    @model_validator(mode="after")
    def _rounds(self) -> SamplingConfig:
        if self.until_pass is None:
            if self.max_samples is not None:
                raise ValueError(
                    "max_samples is for adaptive sampling: set until_pass too (or drop max_samples)"
                )
            return self
        if self.max_samples is None:
            raise ValueError("until_pass needs max_samples (the most samples a prompt may get)")
        if self.max_samples < self.num_samples or self.max_samples % self.num_samples:
            raise ValueError(
                f"max_samples ({self.max_samples}) must be a multiple of num_samples ({self.num_samples}), "
                "the round size"
            )
        return self


class GenerateConfig(StrictModel):
    input: InputConfig = Field(default_factory=InputConfig)
    output: str | None = Field(None, description="Output folder.")
    teacher: EngineConfig = Field(default_factory=EngineConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    shard_size: int = Field(512, ge=1, description="Prompts per Parquet shard (the unit of resume).")
    num_workers: int = Field(1, ge=1, description="Independent jobs sharing the input (scale-out).")
    worker_index: int = Field(0, ge=0, description="This job's index in [0, num_workers).")
    verify: VerifyConfig = Field(
        default_factory=VerifyConfig,
        description="How adaptive sampling (sampling.until_pass) verifies each round: the filter's "
        "`verify` section (distill run copies the filter's when this one is not given).",
    )
    cost: Prices | None = Field(
        None,
        description="Prices of what the teacher spends (per million input/output tokens for an endpoint, "
        "per accelerator-hour for a local engine): the manifest, the filter report and `distill run` "
        "show money beside tokens. `distill run` copies the recipe's top-level `cost` here.",
    )
    journal_flush_seconds: float = Field(
        2.0,
        ge=0,
        description="How often finished requests of unsealed shards are written to the journal: "
        "the most a SIGKILL can lose besides the requests in flight (0: after every request).",
    )
