"""Fixtures for the train tests: a tiny random student (2 layers, hidden 64) with the built-in tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GSM8K = REPO / "data" / "gsm8k_test.jsonl"


def gsm8k_rows(n: int, start: int = 0) -> list[dict]:
    """GSM8K problems as SFT rows: the worked solution becomes a short think block."""
    rows = []
    with open(GSM8K, encoding="utf-8") as fh:
        lines = fh.readlines()[start : start + n]
    for line in lines:
        record = json.loads(line)
        work, answer = record["answer"].split("####")
        content = f"<think>\n{work.strip()}\n</think>\n\nThe answer is \\boxed{{{answer.strip()}}}."
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": record["question"]},
                    {"role": "assistant", "content": content},
                ]
            }
        )
    return rows


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.schema import MESSAGE_TYPE

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"messages": pa.array([r["messages"] for r in rows], type=pa.list_(MESSAGE_TYPE))})
    pq.write_table(table, path)
    return path


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("DISTILL_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def builtin_path() -> str:
    from distill.errors import UserError
    from distill.models import resolve_model

    try:
        return resolve_model("smollm2-135m")
    except UserError as exc:
        pytest.skip(f"built-in model not available: {exc}")


@pytest.fixture(scope="session")
def tokenizer(builtin_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(builtin_path)


@pytest.fixture(scope="session")
def tiny_model(builtin_path, tmp_path_factory) -> str:
    """A randomly initialised 2-layer, hidden-64 Llama with the built-in tokenizer and chat template."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-student")
    config = AutoConfig.from_pretrained(builtin_path)
    config.update(
        {
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "dtype": "float32",
        }
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    AutoTokenizer.from_pretrained(builtin_path).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def sft_data(tmp_path) -> Path:
    """24 GSM8K rows as JSONL."""
    return write_jsonl(tmp_path / "sft" / "rows.jsonl", gsm8k_rows(24))


@pytest.fixture
def tiny_config(tiny_model, sft_data, tmp_path):
    """A TrainConfig factory for quick CPU runs of the tiny student."""
    from distill.train.config import TrainConfig

    def make(**overrides):
        values = {
            "model": tiny_model,
            "data": str(sft_data),
            "output": str(tmp_path / "out"),
            "max_length": 512,
            "global_batch_size": 2,
            "per_device_batch_size": 1,
            "max_steps": 4,
            "learning_rate": 1e-3,
            "logging_steps": 1,
            "save_steps": 2,
            **overrides,
        }
        return TrainConfig.model_validate(values)

    return make
