"""The TRL side: hardware choices, SFTConfig from TrainConfig, the student model, LoRA, the SFTTrainer.

Everything here runs identically in every process that `accelerate launch` starts; the CPU path is
the same code with one process.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distill.errors import UserError
from distill.train.attention import PACKED_SDPA
from distill.train.config import TrainConfig


@dataclass
class Runtime:
    """Settings decided at run time from the config and the machine."""

    world_size: int
    grad_accum: int
    cuda: bool
    bf16: bool
    attn_implementation: str
    liger: bool
    gradient_checkpointing: bool
    model_dtype: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_runtime(config: TrainConfig) -> Runtime:
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = world * config.per_device_batch_size
    if config.global_batch_size % per_step:
        raise UserError(
            f"global_batch_size {config.global_batch_size} is not a multiple of per_device_batch_size "
            f"{config.per_device_batch_size} x {world} process(es)"
        )
    cuda = torch.cuda.is_available()
    bf16 = config.bf16 if config.bf16 is not None else native_bf16(cuda)
    attn = config.attn_implementation
    if attn is None:
        if cuda and _installed("flash_attn"):
            attn = "flash_attention_2"
        else:  # packed batches: causal SDPA per conversation (attention.py), else plain SDPA
            attn = PACKED_SDPA if config.packing else "sdpa"
    liger = config.liger if config.liger is not None else cuda and _installed("liger_kernel")
    if liger and not _installed("liger_kernel"):
        raise UserError("liger: true needs the liger-kernel package (GPU only): pip install liger-kernel")
    model_dtype = config.model_dtype
    if model_dtype == "auto":
        model_dtype = "bfloat16" if bf16 and cuda else "float32"
    return Runtime(
        world_size=world,
        grad_accum=config.global_batch_size // per_step,
        cuda=cuda,
        bf16=bf16,
        attn_implementation=attn,
        liger=liger,
        gradient_checkpointing=config.use_gradient_checkpointing(),
        model_dtype=model_dtype,
    )


def sft_args(config: TrainConfig, runtime: Runtime, checkpoint_dir: Path) -> Any:
    """TRL's SFTConfig. Create it before loading the model: under DeepSpeed ZeRO-3 it arms sharded loading."""
    from trl import SFTConfig

    scheduler_kwargs = (
        {"min_lr_rate": config.min_lr_rate} if config.lr_scheduler == "cosine_with_min_lr" else None
    )
    return SFTConfig(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=runtime.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        lr_scheduler_kwargs=scheduler_kwargs,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps (transformers 5)
        weight_decay=config.weight_decay,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        bf16=runtime.bf16,
        fp16=False,
        use_cpu=not runtime.cuda,  # also what transformers needs for bf16 autocast on the CPU
        gradient_checkpointing=runtime.gradient_checkpointing,
        use_liger_kernel=runtime.liger,
        # Rows arrive tokenized with labels (data.py); TRL only packs and collates them.
        max_length=config.max_length,
        packing=config.packing,
        packing_strategy="bfd",
        padding_free=config.packing,
        dataset_num_proc=config.num_proc,
        ddp_timeout=config.ddp_timeout,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to=config.report_to or "none",
        dataloader_pin_memory=runtime.cuda,
        # tqdm off under a stage's own progress (distill.progress: steps, loss, tok/s, ETA)
        disable_tqdm=os.environ.get("DISTILL_NO_PROGRESS") == "1" or _stage_progress_open(),
    )


def load_student(model_path: str, runtime: Runtime, tokenizer: Any) -> Any:
    """The student, in the training dtype, with room for any token the template added."""
    import torch
    from transformers import AutoModelForCausalLM

    if runtime.attn_implementation == PACKED_SDPA:
        from distill.train.attention import register

        register()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_path,
            dtype=getattr(torch, runtime.model_dtype),
            attn_implementation=runtime.attn_implementation,
        )
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the student {model_path}: {str(exc).splitlines()[0]}") from None
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    align_generation_config(model, tokenizer)
    return model


def align_generation_config(model: Any, tokenizer: Any) -> None:
    """Make generation stop at the template's end of turn and know the pad token."""
    eos = model.generation_config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos = [tokenizer.eos_token_id, *eos]
    model.generation_config.eos_token_id = eos[0] if len(eos) == 1 else eos
    model.config.eos_token_id = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def lora_config(config: TrainConfig, added_token_ids: list[int]) -> Any:
    from peft import LoraConfig

    s = config.lora_settings
    return LoraConfig(
        r=s.r,
        lora_alpha=s.alpha,
        lora_dropout=s.dropout,
        target_modules=s.target_modules,
        task_type="CAUSAL_LM",
        # Tokens the default template added have untrained embeddings: train those rows too.
        trainable_token_indices={"embed_tokens": list(added_token_ids)} if added_token_ids else None,
    )


def build_trainer(
    config: TrainConfig,
    args: Any,
    model: Any,
    tokenizer: Any,
    dataset: Any,
    added_token_ids: list[int],
    callbacks: list[Any] | None = None,
) -> Any:
    from trl import SFTTrainer

    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config, added_token_ids) if config.lora else None,
        callbacks=callbacks,
    )


def native_bf16(cuda: bool) -> bool:
    """Whether the hardware computes in bfloat16 natively: a GPU that supports it, or a CPU with
    AVX512-BF16 or AMX (where bf16 autocast runs matmuls about 2-4x faster than float32)."""
    import torch

    if cuda:
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def _stage_progress_open() -> bool:
    from distill.progress import current

    return current() is not None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
