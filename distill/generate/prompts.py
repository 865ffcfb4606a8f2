"""What the teacher sees: the user turn per domain and the chat messages."""

from __future__ import annotations

from distill.generate.config import PromptConfig


def user_prompt(problem: str, domain: str, cfg: PromptConfig) -> str:
    return cfg.templates[domain].replace("{problem}", problem)


def chat_messages(prompt: str, cfg: PromptConfig) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": prompt}]
    if cfg.system_prompt:
        messages.insert(0, {"role": "system", "content": cfg.system_prompt})
    return messages
