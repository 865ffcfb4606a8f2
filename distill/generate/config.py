"""The `generate` section of a recipe."""

from __future__ import annotations

from pydantic import Field, field_validator

from distill.config import StrictModel
from distill.engines.config import EngineConfig
from distill.inputs import InputConfig

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

DEFAULT_TEMPLATES: dict[str, str] = {
    "math": "{problem}\n" + MATH_INSTRUCTION,
    "code": "{problem}\n\nWrite your final solution as a single Python code block.",
    "science": "{problem}\n" + MATH_INSTRUCTION,
    "general": "{problem}",
}


class SamplingConfig(StrictModel):
    num_samples: int = Field(4, ge=1, description="Samples per prompt (vLLM's n).")
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int | None = Field(None, description="Off by default, as in the R1 recipe.")
    max_tokens: int = Field(32768, ge=1, description="Most new tokens per sample.")
    seed: int = Field(0, description="Engine seed.")
    ignore_eos: bool = Field(False, description="Benchmarks only: always generate max_tokens tokens.")


class PromptConfig(StrictModel):
    templates: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_TEMPLATES),
        description="User-turn template per domain; {problem} is replaced by the problem text.",
    )
    system_prompt: str | None = Field(None, description="None, as in the R1 recipe.")
    think_prefill: bool = Field(
        True, description="Open the assistant turn with '<think>\\n' unless the template already does."
    )

    @field_validator("templates")
    @classmethod
    def _check_templates(cls, value: dict[str, str]) -> dict[str, str]:
        from distill.schema import DOMAINS

        merged = {**DEFAULT_TEMPLATES, **value}
        for domain, template in merged.items():
            if domain not in DOMAINS:
                raise ValueError(f"unknown domain {domain!r} (known: {', '.join(DOMAINS)})")
            if "{problem}" not in template:
                raise ValueError(f"template for {domain!r} must contain {{problem}}")
        return merged


class GenerateConfig(StrictModel):
    input: InputConfig = Field(default_factory=InputConfig)
    output: str | None = Field(None, description="Output folder.")
    teacher: EngineConfig = Field(default_factory=EngineConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    shard_size: int = Field(512, ge=1, description="Prompts per Parquet shard (the unit of resume).")
    num_workers: int = Field(1, ge=1, description="Independent jobs sharing the input (scale-out).")
    worker_index: int = Field(0, ge=0, description="This job's index in [0, num_workers).")
