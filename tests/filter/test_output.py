"""The filter's output pass (`distill/filter/output.py`): SFT messages, the split of a work shard's
rows into sft/ and rejects/ by the plan, `rejects.jsonl`."""

from __future__ import annotations

import json

from distill.filter import output
from distill.filter.output import _messages, _split, messages_of, write_input_rejects
from distill.schema import FILTERED_SCHEMA, SFT_SCHEMA, to_table
from tests.filter.helpers import real_reasoning, trace


def rows() -> list[dict]:
    r = real_reasoning()
    out = [trace(f"r{i}", f"p{i % 3}", i, r[i], f"So \\boxed{{{i}}} ü", tokens=300 + i) for i in range(8)]
    out[1]["reasoning"] = None
    out[2]["content"] = None
    out[3]["prompt"] = "日本語の問題?"
    out[5]["reject_stage"], out[5]["reject_reason"] = "verify", "fail: wrong answer"
    for row in out:
        row["verdict"] = "fail" if row.get("reject_stage") else "pass"
    return out


def test_messages_built_with_arrow_equal_messages_of(monkeypatch):
    every = rows()
    monkeypatch.setattr(output, "OUT_BATCH", 3)  # several batches
    table = to_table(every, FILTERED_SCHEMA)
    assert _messages(table).to_pylist() == [messages_of(row) for row in every]
    user, assistant = messages_of(every[0])
    assert user == {"role": "user", "content": every[0]["prompt"]}
    assert assistant["content"] == f"<think>\n{every[0]['reasoning']}\n</think>\n\n{every[0]['content']}"


def test_split_applies_the_plans_decisions_and_pass_rates():
    every = rows()
    decisions = {"r0": ("dedup", "exact_duplicate: reasoning equals r3"), "r5": ("select", "never applied")}
    rates = {"p0": 0.5, "p1": 1.0, "p2": None}
    kept, dropped, stats = _split(to_table(every, FILTERED_SCHEMA), decisions, rates)
    assert kept.schema == SFT_SCHEMA and dropped.schema == FILTERED_SCHEMA
    assert kept.column("id").to_pylist() == ["r1", "r2", "r3", "r4", "r6", "r7"]
    why = {r["id"]: (r["reject_stage"], r["reject_reason"]) for r in dropped.to_pylist()}
    # a first-pass reject keeps its reason; the plan decides only for rows still standing
    assert why == {"r0": decisions["r0"], "r5": ("verify", "fail: wrong answer")}
    assert [r["pass_rate"] for r in kept.to_pylist()] == [1.0, None, 0.5, 1.0, 0.5, 1.0]
    assert kept.column("messages").to_pylist() == [
        messages_of(r) for r in every if r["id"] in set(kept["id"].to_pylist())
    ]
    assert stats == {"prompts": 3}


def test_input_rejects_are_one_json_line_each(tmp_path):
    bad = [
        {"file": "a.jsonl", "line": 3, "reason": "malformed JSON: é"},
        {"file": "a.jsonl", "line": 9, "reason": "x"},
    ]
    write_input_rejects(tmp_path, bad)
    assert [
        json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    ] == bad
    assert "é" in (tmp_path / "rejects.jsonl").read_text(encoding="utf-8")  # not escaped
    write_input_rejects(tmp_path, [])  # a resumed run without the rows: the file stays
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 2
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    write_input_rejects(fresh, [])  # none: an empty file all the same
    assert (fresh / "rejects.jsonl").read_text() == ""
