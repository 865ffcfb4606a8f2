"""How to reach a model: the config shared by the teacher (generate), the judge (filter) and eval."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from distill.config import StrictModel


class EngineConfig(StrictModel):
    backend: Literal["vllm", "openai"] = Field(
        "vllm", description="vllm: a local engine; openai: any OpenAI-compatible endpoint."
    )
    model: str = Field(
        "smollm2-135m",
        description="A Hugging Face id, a local folder, or the built-in short name 'smollm2-135m'. "
        "With the openai backend: the model name the endpoint serves.",
    )
    # --- local vLLM engine ---
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine (vLLM tensor parallel).")
    data_parallel_size: int = Field(
        1, ge=1, description="Engines on this machine, each on its own tensor_parallel_size GPUs."
    )
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="vLLM memory fraction; default 0.9 on GPU, 0.35 of RAM on CPU."
    )
    max_model_len: int | None = Field(None, ge=1, description="Context length; default: the model's.")
    max_num_seqs: int | None = Field(None, ge=1, description="Sequences batched at once; default: vLLM's.")
    dtype: str = "auto"
    enforce_eager: bool | None = Field(None, description="Skip graph capture; default: true on CPU.")
    max_in_flight: int = Field(
        1024,
        ge=1,
        description="Prompts queued in the local engine at once (keeps batches full across shards).",
    )
    vllm_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra vllm.LLM arguments.")
    # --- OpenAI-compatible endpoint ---
    base_url: str | None = Field(None, description="e.g. http://localhost:8000/v1")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never logged)."
    )
    max_concurrency: int = Field(64, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(6, ge=0, description="Retries of a transient error, with backoff.")
    retry_backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles each retry (max 60 s).")
    request_timeout: float = Field(1800.0, gt=0, description="Seconds per request.")
