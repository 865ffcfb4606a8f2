"""The filter stage with the real sandbox (HumanEval) and a real LLM judge (local vLLM server)."""

from __future__ import annotations

import gzip
import json

import pyarrow.parquet as pq
import pytest

from distill.filter.run import run_filter
from distill.stages import load_stage_config
from tests.conftest import DATA
from tests.filter.helpers import real_reasoning, trace

pytestmark = pytest.mark.slow


def humaneval(n: int) -> list[dict]:
    with gzip.open(DATA / "humaneval.jsonl.gz", "rt") as fh:
        return [json.loads(next(fh)) for _ in range(n)]


def read(folder):
    return {
        r["id"]: r for p in sorted((folder / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()
    }


def test_code_rows_are_verified_in_the_sandbox(tmp_path):
    reasoning = real_reasoning()
    rows = []
    for i, task in enumerate(humaneval(4)):
        tests = json.dumps({"code": task["test"], "entry_point": task["entry_point"]})
        good = f"```python\n{task['prompt']}{task['canonical_solution']}```"
        bad = f"```python\n{task['prompt']}    pass\n```"
        for k, content in enumerate((good, bad)):
            r = trace(
                f"h{i}-{k}", f"he{i}", k, reasoning[2 * i + k], content, domain="code", problem=task["prompt"]
            )
            r["tests"], r["answer"] = tests, None
            rows.append(r)
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_stage_config(
        "filter", None, {"input": str(path), "output": str(tmp_path / "out"), "workers": 1}
    )
    run_filter(cfg, log=lambda m: None)
    kept, rejected = read(tmp_path / "out" / "sft"), read(tmp_path / "out" / "rejects")
    assert sorted(kept) == [f"h{i}-0" for i in range(4)]
    for i in range(4):
        assert kept[f"h{i}-0"]["verdict"] == "pass"
        bad = rejected[f"h{i}-1"]
        assert bad["verdict"] == "fail" and bad["reject_stage"] == "verify"
        assert kept[f"h{i}-0"]["pass_rate"] == 0.5


def test_general_rows_go_to_a_real_judge(tmp_path, vllm_server):
    reasoning = real_reasoning()
    qa = [
        ("What is the capital of France?", "Paris", "The capital of France is Paris."),
        ("What is 7 times 6?", "42", "7 times 6 is 42."),
        ("Which planet is known as the red planet?", "Mars", "It is Venus."),
    ]
    rows = []
    for i, (q, ref, ans) in enumerate(qa):
        r = trace(f"g{i}", f"q{i}", 0, reasoning[i], ans, domain="general", problem=q)
        r["answer"] = ref
        rows.append(r)
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_stage_config(
        "filter",
        None,
        {
            "input": str(path),
            "output": str(tmp_path / "out"),
            "workers": 1,
            "verify.judge.engine": {
                "backend": "openai",
                "base_url": vllm_server,
                "model": "smollm2-135m",
                "max_retries": 1,
            },
        },
    )
    run_filter(cfg, log=lambda m: None)
    rows_out = {**read(tmp_path / "out" / "sft"), **read(tmp_path / "out" / "rejects")}
    assert sorted(rows_out) == ["g0", "g1", "g2"]
    for row in rows_out.values():
        # the 135M judge is weak: the mechanics are what is checked
        assert row["verdict"] in ("pass", "fail", "error") and row["verdict_reason"]
        if row["verdict"] == "error":
            assert row["verdict_reason"].startswith("judge:")
        assert (row["reject_stage"] is None) == (row["verdict"] == "pass")


def test_a_sandbox_that_cannot_run_stops_the_filter(tmp_path):
    """E.g. a container without the flags bubblewrap needs: a clear error, not every code row an `error`."""
    from distill.errors import UserError

    task = humaneval(1)[0]
    row = trace(
        "h0",
        "he0",
        0,
        real_reasoning()[0],
        f"```python\n{task['prompt']}{task['canonical_solution']}```",
        domain="code",
        problem=task["prompt"],
    )
    row["tests"] = json.dumps({"code": task["test"], "entry_point": task["entry_point"]})
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(row) + "\n")
    cfg = load_stage_config(
        "filter",
        None,
        {
            "input": str(path),
            "output": str(tmp_path / "out"),
            "workers": 1,
            "verify.code.python": "/nonexistent/python3",
        },
    )
    with pytest.raises(UserError, match="code sandbox does not work here"):
        run_filter(cfg, log=lambda m: None)
