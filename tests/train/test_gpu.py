"""GPU-only paths (bf16, FlashAttention, Liger): skipped without CUDA."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_runtime_uses_the_gpu_features(tiny_config):
    from distill.train.trainer import resolve_runtime

    runtime = resolve_runtime(tiny_config())
    assert runtime.cuda and runtime.bf16 == torch.cuda.is_bf16_supported()
    assert runtime.model_dtype == ("bfloat16" if runtime.bf16 else "float32")
    flash = importlib.util.find_spec("flash_attn") is not None
    assert runtime.attn_implementation == ("flash_attention_2" if flash else "sdpa")
    assert runtime.liger == (importlib.util.find_spec("liger_kernel") is not None)


def test_gpu_run_with_packing(tiny_config):
    from transformers import AutoModelForCausalLM

    from distill.train.run import train

    config = tiny_config(max_steps=2)
    manifest = train(config)
    assert manifest["training"]["completed"] and manifest["runtime"]["cuda"]
    AutoModelForCausalLM.from_pretrained(Path(config.output))


def test_packed_logits_equal_each_row_alone_on_gpu(tiny_config):
    from distill.train.run import make_trainer, prepare

    p = prepare(tiny_config())
    trainer = make_trainer(p)
    model = trainer.model.eval()
    for batch in trainer.get_train_dataloader():
        if int((batch["position_ids"] == 0).sum()) >= 2:
            break
    ids, pos = batch["input_ids"].cuda(), batch["position_ids"].cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=p.runtime.bf16):
        packed = model(input_ids=ids, position_ids=pos).logits[0].float()
        starts = [*(pos[0] == 0).nonzero().flatten().tolist(), ids.shape[1]]
        for a, b in itertools.pairwise(starts):
            alone = model(input_ids=ids[:, a:b]).logits[0].float()
            torch.testing.assert_close(packed[a:b], alone, atol=5e-2, rtol=5e-2)
