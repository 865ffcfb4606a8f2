import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.inputs import InputConfig, InputError, read_prompts
from tests.conftest import DATA, FIXTURES


def cfg(path, **kw):
    return InputConfig(path=str(path), columns={"problem": "question"}, **kw)


def test_bad_input_fixture_rows_are_kept_or_rejected_with_line_and_reason():
    pset = read_prompts(cfg(FIXTURES / "bad_input.jsonl", answer_format="gsm8k"))
    assert pset.table.column("id").to_pylist() == ["q1", "q2", "q7"]
    # BOM stripped, CRLF stripped, gsm8k final answer extracted
    assert pset.table.column("problem").to_pylist()[0].startswith("Janet has 3 apples")
    assert pset.table.column("answer").to_pylist() == ["5", "40", "60"]
    by_line = {r.line: r.reason for r in pset.rejects}
    assert set(by_line) == {3, 4, 5, 6, 7, 10}
    assert by_line[3].startswith("malformed JSON")
    assert by_line[4].startswith("invalid UTF-8")
    assert by_line[5] == "missing problem field 'question'"
    assert by_line[6] == "empty problem"
    assert by_line[7] == "duplicate id 'q1' (first at line 1)"
    assert by_line[10].startswith("not a JSON object")
    assert all(r.file.endswith("bad_input.jsonl") for r in pset.rejects)
    # every non-blank row is accounted for: kept + rejected == read
    assert pset.table.num_rows + len(pset.rejects) == pset.rows_read == 9


def test_missing_path_is_a_user_error():
    with pytest.raises(InputError, match="input not found"):
        read_prompts(cfg("/nonexistent/problems.jsonl"))


def test_parquet_that_is_not_parquet_is_a_user_error(tmp_path):
    bogus = tmp_path / "problems.parquet"
    bogus.write_text('{"question": "hi"}\n')
    with pytest.raises(InputError, match="not a Parquet file"):
        read_prompts(cfg(bogus))


def test_jsonl_that_is_not_jsonl_is_a_user_error(tmp_path):
    bogus = tmp_path / "problems.jsonl"
    pq.write_table(pa.table({"question": ["a", "b"]}), bogus)
    with pytest.raises(InputError, match="not JSON Lines"):
        read_prompts(cfg(bogus))


def test_unknown_suffix_is_a_user_error(tmp_path):
    f = tmp_path / "problems.csv"
    f.write_text("question\nhi\n")
    with pytest.raises(InputError, match="unknown input format"):
        read_prompts(cfg(f))


def test_gsm8k_mapping_limit_and_stable_ids():
    c = cfg(DATA / "gsm8k_test.jsonl", answer_format="gsm8k", limit=16, source="gsm8k")
    a, b = read_prompts(c), read_prompts(c)
    assert a.table.num_rows == 16 and a.truncated_by_limit
    assert a.table.column("id").to_pylist() == b.table.column("id").to_pylist()
    assert len(set(a.table.column("id").to_pylist())) == 16
    assert a.table.column("answer").to_pylist()[0] == "18"
    assert set(a.table.column("domain").to_pylist()) == {"math"}
    assert set(a.table.column("source").to_pylist()) == {"gsm8k"}


def test_parquet_and_gzip_jsonl_and_tests_column(tmp_path):
    rows = [
        {
            "task_id": "HumanEval/0",
            "prompt": "def f():",
            "test": {"code": "def check(c): pass", "entry_point": "f"},
        },
        {"task_id": "HumanEval/1", "prompt": "def g():", "test": [{"input": "1", "output": "2"}]},
    ]
    gz = tmp_path / "he.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    c = InputConfig(
        path=str(gz), columns={"problem": "prompt", "id": "task_id", "tests": "test"}, domain="code"
    )
    pset = read_prompts(c)
    assert pset.table.column("id").to_pylist() == ["HumanEval/0", "HumanEval/1"]
    assert json.loads(pset.table.column("tests").to_pylist()[0])["entry_point"] == "f"
    pq.write_table(
        pa.Table.from_pylist([{"problem": "x", "domain": "science"}, {"problem": "y", "domain": "poetry"}]),
        tmp_path / "p.parquet",
    )
    pset = read_prompts(InputConfig(path=str(tmp_path / "p.parquet")))
    assert pset.table.column("domain").to_pylist() == ["science"]
    assert pset.rejects[0].line == 2 and "unknown domain 'poetry'" in pset.rejects[0].reason


def test_skip_takes_held_out_problems_after_the_first_ones():
    base = cfg(DATA / "gsm8k_test.jsonl", answer_format="gsm8k")
    first = read_prompts(base.model_copy(update={"limit": 20})).table.column("id").to_pylist()
    held = read_prompts(base.model_copy(update={"skip": 16, "limit": 4})).table.column("id").to_pylist()
    assert held == first[16:20]
