"""The prompt format: what a teacher (or a model under eval) sees for a problem. The user-turn
template per domain (R1's "reason step by step ... \\boxed{}" for math), the optional system
prompt, and the chat messages. Ground floor: generate sends these, eval through generate, and the
filter rebuilds the prompt `distill generate` would have sent for traces made elsewhere.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from distill.config import StrictModel

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

DEFAULT_TEMPLATES: dict[str, str] = {
    "math": "{problem}\n" + MATH_INSTRUCTION,
    "code": "{problem}\n\nWrite your final solution as a single Python code block.",
    "science": "{problem}\n" + MATH_INSTRUCTION,
    "general": "{problem}",
}


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
        from distill.schema import DOMAINS  # pyarrow: only once a template is validated

        merged = {**DEFAULT_TEMPLATES, **value}
        for domain, template in merged.items():
            if domain not in DOMAINS:
                raise ValueError(f"unknown domain {domain!r} (known: {', '.join(DOMAINS)})")
            if "{problem}" not in template:
                raise ValueError(f"template for {domain!r} must contain {{problem}}")
        return merged


def user_prompt(problem: str, domain: str, cfg: PromptConfig) -> str:
    return cfg.templates[domain].replace("{problem}", problem)


def chat_messages(prompt: str, cfg: PromptConfig) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": prompt}]
    if cfg.system_prompt:
        messages.insert(0, {"role": "system", "content": cfg.system_prompt})
    return messages
