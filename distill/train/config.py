"""The `train` section of a recipe: supervised fine-tuning of the student (`distill train-student`).

Precedence, lowest first: field defaults < `preset` < the recipe's explicit keys < command-line flags.
A preset only fills the keys the recipe and flags leave unset.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from distill.config import StrictModel

# Hyperparameters published by the public distillation recipes (see docs/training.md for sources).
# Only what the recipes state is set; everything else keeps the defaults below.
PRESETS: dict[str, dict[str, Any]] = {
    # open-r1, OpenR1-Distill-7B (Qwen2.5-Math-7B student): lr 4e-5, 5 epochs, 32k, cosine to 10 %, warmup 3 %,
    # clip 0.2, global batch 128, gradient checkpointing (plus bf16, Liger, ZeRO-3: decided at run time).
    "openr1": {
        "learning_rate": 4e-5,
        "epochs": 5,
        "max_length": 32768,
        "lr_scheduler": "cosine_with_min_lr",
        "min_lr_rate": 0.1,
        "warmup_ratio": 0.03,
        "max_grad_norm": 0.2,
        "global_batch_size": 128,
        "gradient_checkpointing": True,
    },
    # s1 (Qwen2.5-32B-Instruct student, s1K): lr 1e-5, 5 epochs, block 32768, warmup 5 %, wd 1e-4, beta2 0.95,
    # batch size 16, cosine decay to 0.
    "s1": {
        "learning_rate": 1e-5,
        "epochs": 5,
        "max_length": 32768,
        "lr_scheduler": "cosine",
        "warmup_ratio": 0.05,
        "weight_decay": 1e-4,
        "adam_beta2": 0.95,
        "global_batch_size": 16,
        "gradient_checkpointing": True,
    },
    # Sky-T1-32B-Preview (Qwen2.5-32B-Instruct student): lr 1e-5, 3 epochs, cutoff 16384, batch 96.
    "sky-t1": {
        "learning_rate": 1e-5,
        "epochs": 3,
        "max_length": 16384,
        "global_batch_size": 96,
    },
    # LIMO (Qwen2.5-32B-Instruct student, 817 samples): lr 5e-6, 15 epochs, cutoff 16384.
    "limo": {
        "learning_rate": 5e-6,
        "epochs": 15,
        "max_length": 16384,
    },
}


class LoraSettings(StrictModel):
    """LoRA adapter settings (peft), used when `lora: true`."""

    r: int = Field(16, ge=1, description="Rank of the adapter matrices.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (the update is scaled by alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: str | list[str] = Field(
        "all-linear",
        description="Modules that get adapters: 'all-linear' (every linear layer but the LM head) or a list of "
        "module names such as [q_proj, k_proj, v_proj, o_proj].",
    )


class TrainConfig(StrictModel):
    """Everything `distill train-student` needs; every field can be set in the recipe's `train` section."""

    # --- what to train, on what, where to ---
    model: str = Field(
        "smollm2-135m",
        description="Student: a Hugging Face causal LM folder or hub id (Qwen2.5/Qwen3/Llama families), or the "
        "built-in 'smollm2-135m'.",
    )
    data: str | None = Field(
        None,
        description="The sft/ folder written by `distill filter`, or Parquet/JSONL files with a `messages` column.",
    )
    output: str | None = Field(
        None, description="Output folder: the trained model (loadable by vLLM), checkpoints, logs, manifest."
    )
    preset: Literal["openr1", "s1", "sky-t1", "limo"] | None = Field(
        None, description="Hyperparameters of a public recipe; explicit keys and flags still win."
    )
    resume: bool = Field(False, description="Continue from the last checkpoint in the output folder.")

    # --- tokens ---
    max_length: int = Field(16384, ge=16, description="Most tokens per conversation (prompt + answer).")
    truncate: bool = Field(
        False,
        description="Cut conversations longer than max_length instead of dropping them (dropping is the "
        "default: a cut reasoning trace teaches the student to stop mid-thought).",
    )
    chat_template: str | None = Field(
        None,
        description="Chat template: None uses the student's own (checked to keep the <think> block; falls back to "
        "'default' when it strips it), 'default' forces the built-in ChatML-like template, anything else is a "
        "path to a .jinja file.",
    )
    packing: bool = Field(
        True,
        description="Pack conversations into rows of max_length tokens (best-fit decreasing) with per-conversation "
        "position ids, so no attention crosses conversations; false pads each batch instead.",
    )

    # --- optimisation ---
    epochs: float = Field(3.0, gt=0, description="Passes over the data (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs.")
    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate (AdamW).")
    lr_scheduler: str = Field(
        "cosine_with_min_lr",
        description="transformers scheduler name: cosine_with_min_lr, cosine, linear, constant_with_warmup, ...",
    )
    min_lr_rate: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Final learning rate as a fraction of the peak (cosine_with_min_lr only).",
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of the steps spent warming up linearly.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    adam_beta1: float = Field(0.9, gt=0, lt=1, description="AdamW beta1.")
    adam_beta2: float = Field(0.999, gt=0, lt=1, description="AdamW beta2.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient-norm clipping.")
    per_device_batch_size: int = Field(
        1, ge=1, description="Rows per device per micro-step (a row is a packed sequence when packing)."
    )
    global_batch_size: int = Field(
        16,
        ge=1,
        description="Rows per optimizer step over all devices; gradient accumulation = global / (devices x "
        "per_device_batch_size), which must divide evenly.",
    )
    seed: int = Field(42, description="Seed of the initialisation (LoRA), the data order and dropout.")

    # --- hardware; None = decided at run time ---
    gradient_checkpointing: bool | None = Field(
        None, description="Recompute activations in the backward pass; default: on when max_length > 2048."
    )
    bf16: bool | None = Field(
        None,
        description="bfloat16 mixed precision; default: on when the hardware has it natively (a bf16 GPU, or a "
        "CPU with AVX512-BF16/AMX), else float32.",
    )
    attn_implementation: str | None = Field(
        None,
        description="Attention kernel: default flash_attention_2 on a GPU when flash-attn is installed; else "
        "sdpa_packed with packing (causal SDPA per packed conversation, see attention.py) or sdpa without.",
    )
    liger: bool | None = Field(
        None, description="Liger Triton kernels; default: on a GPU when liger-kernel is installed."
    )
    model_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Dtype of the weights while training: auto = bfloat16 on a GPU with bf16 on (as open-r1), "
        "else float32 (CPU bf16 is autocast over float32 weights). The saved model is cast back to the student's "
        "own dtype.",
    )

    # --- LoRA ---
    lora: bool = Field(False, description="Train a LoRA adapter (peft) instead of all weights.")
    lora_settings: LoraSettings = Field(default_factory=LoraSettings, description="Adapter settings.")
    merge_lora: bool = Field(
        True,
        description="With lora: also write the merged full model to the output folder (the adapter is kept).",
    )

    # --- bookkeeping ---
    logging_steps: int = Field(10, ge=1, description="Optimizer steps between log lines.")
    save_steps: int = Field(500, ge=1, description="Optimizer steps between checkpoints.")
    save_total_limit: int | None = Field(2, ge=1, description="Checkpoints kept (the oldest are deleted).")
    report_to: list[str] = Field(
        default_factory=list,
        description="Extra trackers for the trainer: tensorboard, wandb, ... (none by default).",
    )
    num_proc: int | None = Field(None, ge=1, description="Processes for tokenization; default: one.")
    ddp_timeout: int = Field(
        1800,
        ge=60,
        description="Seconds a process waits at a collective before the run fails, including the other "
        "processes' wait while rank 0 tokenizes (raise it for a large set, or use --prepare-only first).",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            return {**PRESETS[data["preset"]], **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.lr_scheduler == "cosine_with_min_lr" and self.min_lr_rate >= 1:
            raise ValueError("min_lr_rate must be below 1 for cosine_with_min_lr")
        return self

    def use_gradient_checkpointing(self) -> bool:
        if self.gradient_checkpointing is not None:
            return self.gradient_checkpointing
        return self.max_length > 2048
