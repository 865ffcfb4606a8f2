"""Traces without reasoning (a model answering without a chain of thought) train on their answer
alone: no empty `<think>` block in the SFT row, on both of the filter's output paths."""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq

from distill.filter.output import messages_of
from distill.trace import assistant_text
from tests.conftest import DISTILL


def test_assistant_text_without_reasoning_is_the_answer() -> None:
    assert assistant_text(None, "The answer is 33.") == "The answer is 33."
    assert (
        assistant_text("", "c") == "<think>\n\n</think>\n\nc"
    )  # an empty but present reasoning keeps its block
    row = {"prompt": "q", "reasoning": None, "content": "33"}
    assert messages_of(row)[1] == {"role": "assistant", "content": "33"}


def test_filter_writes_no_empty_think_block(tmp_path) -> None:
    rows = [
        {"problem": "Tom has 7 apples and buys 5 more. How many?", "answer": "12",
         "completion": "Tom has 7 + 5 = 12 apples.\nThe answer is 12."},
        {"problem": "What is 3 times 4?", "answer": "12",
         "completion": "<think>\n3 times 4 is 12.\n</think>\n\nThe answer is 12."},
    ]  # fmt: skip
    source = tmp_path / "traces.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "filter:\n  workers: 1\n  verify: {math: {workers: 1, answer_format: lenient}}\n"
        "  readability: {think_tags: false, min_tokens: 1}\n  select: {max_per_prompt: all}\n"
    )
    out = tmp_path / "out"
    done = subprocess.run([*DISTILL, "filter", str(source), "-o", str(out), "--recipe", str(recipe)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    sft = [r for p in sorted((out / "sft" / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    answers = sorted(m[1]["content"] for m in (r["messages"] for r in sft))
    assert answers == [
        "<think>\n3 times 4 is 12.\n</think>\n\nThe answer is 12.",
        "Tom has 7 + 5 = 12 apples.\nThe answer is 12.",
    ]
