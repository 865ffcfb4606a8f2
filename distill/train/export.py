"""The final save: a Hugging Face folder that transformers and vLLM load as is.

Every process calls `export`: `trainer.save_model` gathers sharded weights (FSDP, ZeRO-3) first. The
main process then reloads them in the student's own dtype and writes the output folder: weights
(safetensors), config, generation config (stopping at the template's end of turn), tokenizer and the
chat template that training used. With LoRA the adapter is kept in `adapter/` and, with `merge_lora`,
merged into the base weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from distill.train.trainer import align_generation_config

STAGING = ".export-staging"


def export(
    trainer: Any, tokenizer: Any, out: Path, base_path: str, save_dtype: str, lora: bool, merge: bool
) -> dict:
    """Write the final model to `out`; returns what was written (for the manifest)."""
    out = Path(out)
    staging = out / STAGING
    target = out / "adapter" if lora else staging
    trainer.save_model(str(target))  # collective: every process must call it
    written: dict[str, Any] = {"adapter": "adapter" if lora else None, "model": None}
    if not trainer.is_world_process_zero():
        return written
    if lora and merge:
        model = _merged(base_path, target, tokenizer, save_dtype)
    elif not lora:
        model = _load(str(staging), save_dtype)
    else:
        model = None
    if model is not None:
        align_generation_config(model, tokenizer)
        model.config.use_cache = True
        model.save_pretrained(str(out))
        written["model"] = "."
    tokenizer.save_pretrained(str(out))
    shutil.rmtree(staging, ignore_errors=True)
    return written


def _load(path: str, dtype: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))


def _merged(base_path: str, adapter: Path, tokenizer: Any, dtype: str) -> Any:
    from peft import PeftModel

    base = _load(base_path, dtype)
    if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()


def source_dtype(model_path: str) -> str:
    """The dtype the student was published in (its config), float32 when it does not say."""
    from transformers import AutoConfig

    dtype = getattr(AutoConfig.from_pretrained(model_path), "dtype", None)
    name = str(dtype).removeprefix("torch.") if dtype is not None else "float32"
    return name if name in ("bfloat16", "float16", "float32") else "float32"
