"""The one place that picks an engine for a config. It lives outside `base.py`, which the engines
import, so the interface never imports its own implementations (no import circle)."""

from __future__ import annotations

from distill.engines.base import Engine
from distill.engines.config import EngineConfig


def make_engine(cfg: EngineConfig, think_prefill: bool | None = None) -> Engine:
    """Build the engine a config asks for (heavy imports happen here, not at import time)."""
    if cfg.backend == "openai":
        from distill.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(cfg, think_prefill=bool(think_prefill))
    from distill.engines.vllm_engine import VLLMEngine

    return VLLMEngine(cfg, think_prefill=True if think_prefill is None else think_prefill)
