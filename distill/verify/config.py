"""The `verify` section of a recipe (filter and eval): which verifier each domain goes to, and theirs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from distill.config import StrictModel
from distill.verify.code import CodeVerifyConfig
from distill.verify.judge import JudgeConfig
from distill.verify.math import MathVerifyConfig

Verifier = Literal["math", "code", "judge", "none"]


class VerifyConfig(StrictModel):
    domains: dict[str, Verifier] = Field(
        default_factory=lambda: {"math": "math", "code": "code", "science": "judge", "general": "judge"},
        description="Which verifier a row's domain goes to; 'none' keeps rows unverified (verdict null).",
    )
    on_error: Literal["exclude", "keep"] = Field(
        "exclude",
        description="Rows whose verifier could not decide (verdict 'error'): exclude them (rejected with "
        "the error as reason, counted apart from failures) or keep them. Never scored as 'fail'.",
    )
    error_retries: int = Field(
        1, ge=0, description="Times an 'error' verdict is retried before the policy applies."
    )
    math: MathVerifyConfig = Field(default_factory=MathVerifyConfig)
    code: CodeVerifyConfig = Field(default_factory=CodeVerifyConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)

    @field_validator("domains")
    @classmethod
    def _all_domains(cls, value: dict[str, str]) -> dict[str, str]:
        from distill.schema import DOMAINS

        merged = {"math": "math", "code": "code", "science": "judge", "general": "judge", **value}
        unknown = sorted(set(merged) - set(DOMAINS))
        if unknown:
            raise ValueError(f"unknown domain {unknown[0]!r} (known: {', '.join(DOMAINS)})")
        return merged
