"""The filter's Parquet fast paths (`distill/filter/read.py`) read what `read_trace_file` reads."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from distill.filter.config import FilterInput
from distill.filter.read import read_first_pass, read_input, read_present
from distill.filter.traces import read_trace_file
from distill.schema import TRACE_SCHEMA, to_table
from tests.filter.helpers import gsm8k, real_reasoning, trace


def rows() -> list[dict]:
    r, q = real_reasoning(), gsm8k(3)
    out = [
        trace(f"r{i}", f"p{i % 3}", i, r[i], f"\\boxed{{{i}}}", problem=q[i % 3]["question"])
        for i in range(6)
    ]
    out[2]["completion_tokens"] = None
    out[4]["reasoning"] = None
    return out


def test_a_valid_trace_parquet_is_read_as_it_is(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(to_table(rows(), TRACE_SCHEMA), path)
    table, rejects = read_input(path)
    assert rejects == [] and table.equals(read_trace_file(path).table)
    # under an `input` mapping, the strict reader (which maps the columns) reads it
    mapped, _ = read_input(path, FilterInput(source="elsewhere"))
    assert mapped.column("source").to_pylist() == ["test"] * 6


def test_the_first_pass_reads_a_valid_parquet_slim(tmp_path):
    """Without its reasoning, and without its completions when no token count is missing (the
    feature workers read them); otherwise with them, and any other file the strict way."""
    path = tmp_path / "t.parquet"
    every = rows()
    pq.write_table(to_table(every, TRACE_SCHEMA), path)
    read, slim = read_first_pass(path)
    assert slim and "reasoning" not in read.table.column_names
    assert "completion" in read.table.column_names  # one row has no token count: needed for its length
    counted = [{**row, "completion_tokens": 100} for row in every]
    pq.write_table(to_table(counted, TRACE_SCHEMA), path)
    read, slim = read_first_pass(path)
    assert slim and not {"reasoning", "completion"} & set(read.table.column_names)
    assert read.table.column("id").to_pylist() == [row["id"] for row in every]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in counted))
    read, slim = read_first_pass(jsonl)
    assert not slim and read.table.num_rows == 6


def test_a_row_without_a_required_field_sends_the_file_to_the_strict_reader(tmp_path):
    path = tmp_path / "t.parquet"
    bad = rows()
    bad[1]["completion"] = ""
    pq.write_table(to_table(bad, TRACE_SCHEMA), path)
    table, rejects = read_input(path)
    assert table.num_rows == 5 and len(rejects) == 1 and "completion" in rejects[0]["reason"]


def test_read_present_reads_the_columns_the_file_has(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "problem": ["x", None]}), path)
    assert read_present(path, ["problem", "answer", "id"]).column_names == ["problem", "id"]
    assert read_present(path, ["answer"]).num_columns == 0
