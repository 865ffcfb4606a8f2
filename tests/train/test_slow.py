"""Real runs with the built-in SmolLM2-135M student (slow tier): the loss goes down, vLLM loads the result."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import gsm8k_rows, write_jsonl

pytestmark = pytest.mark.slow

VLLM_SCRIPT = """
import json, sys

if __name__ == "__main__":
    from vllm import LLM, SamplingParams

    llm = LLM(model=sys.argv[1], enforce_eager=True, gpu_memory_utilization=0.35, max_model_len=1024, seed=0)
    out = llm.chat([[{"role": "user", "content": "What is 2 + 3?"}]], SamplingParams(max_tokens=8, temperature=0))
    print("RESULT " + json.dumps({"text": out[0].outputs[0].text, "tokens": len(out[0].outputs[0].token_ids)}))
"""


def answer_nll(model_dir: str, tokenizer, rows: list[dict]) -> float:
    """Mean negative log-likelihood of the assistant tokens of `rows` (our own tokenization and labels)."""
    import torch
    from transformers import AutoModelForCausalLM

    from distill.train.data import tokenize_conversation

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            ids, labels, _ = tokenize_conversation(
                tokenizer, tokenizer.chat_template, row["messages"], 4096, False
            )
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            n = sum(1 for t in labels[1:] if t != -100)
            total, count = total + out.loss.item() * n, count + n
    return total / count


def test_builtin_student_learns_and_vllm_loads_it(builtin_path, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from distill.train.config import TrainConfig
    from distill.train.logs import read_log
    from distill.train.run import train

    rows = gsm8k_rows(16)
    data = write_jsonl(tmp_path / "sft.jsonl", rows)
    out = tmp_path / "student"
    config = TrainConfig(
        data=str(data),
        output=str(out),
        max_length=512,
        global_batch_size=1,
        max_steps=12,
        learning_rate=1e-4,
        warmup_ratio=0.0,
        logging_steps=1,
        save_steps=100,
    )
    manifest = train(config)
    assert manifest["training"]["completed"] and manifest["student"]["saved_dtype"] == "bfloat16"

    before, after = answer_nll(builtin_path, tokenizer, rows), answer_nll(str(out), tokenizer, rows)
    print(f"answer NLL on the 16 training rows: before {before:.3f}, after {after:.3f}")
    assert after < 0.8 * before, (before, after)
    loss = [r["loss"] for r in read_log(out / "train_log.jsonl") if "loss" in r]
    assert len(loss) == 12 and sum(loss[-4:]) < sum(loss[:4])

    assert AutoModelForCausalLM.from_pretrained(out).dtype.__str__() == "torch.bfloat16"
    script = tmp_path / "vllm_load.py"
    script.write_text(textwrap.dedent(VLLM_SCRIPT))
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=540, cwd=tmp_path
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["tokens"] > 0
    (Path(tmp_path) / "vllm_result.json").write_text(json.dumps(result))
