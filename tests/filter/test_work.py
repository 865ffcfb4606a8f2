"""The first pass's work shards (`distill/filter/work.py`): signatures as binary rows, and what the
later passes read back (the plan's keys, the input counts of every file, also of a resumed run)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from distill.filter.config import FilterConfig
from distill.filter.run import identity_of, run_filter
from distill.filter.traces import list_trace_files
from distill.filter.work import binary_rows, input_counts, input_reject_rows, read_keys
from distill.schema import TRACE_SCHEMA, to_table
from distill.shards import ShardStore
from tests.filter.helpers import gsm8k, real_reasoning, trace


def test_binary_rows_hold_each_rows_bytes():
    values = np.arange(5 * 4, dtype=np.uint32).reshape(5, 4)
    column = binary_rows(values)
    assert column.type == "binary" and len(column) == 5
    assert [np.frombuffer(b, np.uint32).tolist() for b in column.to_pylist()] == values.tolist()
    assert len(binary_rows(np.zeros((0, 4), np.uint32))) == 0


def test_the_keys_and_counts_read_back_from_the_work_shards(tmp_path):
    r, q = real_reasoning(), gsm8k(2)
    first = [
        trace(f"a{i}", "p1", i, r[i], "\\boxed{18}", tokens=100 + i, problem=q[0]["question"])
        for i in range(3)
    ]
    second = [
        trace(f"b{i}", "p2", i, r[5 + i], "\\boxed{3}", tokens=200 + i, problem=q[1]["question"])
        for i in range(2)
    ]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(to_table(first, TRACE_SCHEMA), folder / "a.parquet")
    (folder / "b.jsonl").write_text("".join(json.dumps(x) + "\n" for x in second) + "{bad\n")
    cfg = FilterConfig(input=str(folder), output=str(tmp_path / "out"), workers=1, keep_work=True)
    cfg.verify.math.workers = 1
    run_filter(cfg, log=lambda m: None)
    files = list_trace_files(folder)
    work = ShardStore(tmp_path / "out" / "work", identity_of(cfg, files), len(files))
    work.open()
    keys = read_keys(work, files, cfg.dedup.num_perm, problems=True)
    assert keys.ids == ["a0", "a1", "a2", "b0", "b1"] and keys.bounds == [(0, 3), (3, 5)]
    assert keys.lengths == [100, 101, 102, 200, 201] and keys.signatures.shape == (5, 128)
    assert keys.problems == {"p1": q[0]["question"], "p2": q[1]["question"]}  # from the Parquet input too
    assert [len(d) for d in keys.digests] == [16] * 5
    sigs = np.concatenate(
        [
            np.frombuffer(
                b"".join(pq.read_table(work.root / name, columns=["_sig"])["_sig"].to_pylist()), np.uint32
            )
            for name in sorted(work.shards)
        ]
    )
    assert (keys.signatures == sigs.reshape(5, 128)).all()  # filled from the buffers: the same values
    rejects = input_reject_rows(work, len(files))
    assert len(rejects) == 1 and rejects[0]["reason"].startswith("malformed JSON")
    assert input_counts(work, len(files)) == {"derived": {}, "no_answer_column": 0, "unparsable_golds": {}}
