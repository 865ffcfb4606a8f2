"""The first pass's per-row features (`distill/filter/features.py`), from rows and from a Parquet file."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from distill.filter.dedup import DedupConfig, exact_digest, minhash_signature
from distill.filter.features import features, file_features, preference_length
from distill.filter.readability import ReadabilityConfig, check_readability
from distill.schema import TRACE_SCHEMA, to_table
from distill.verify.answers import REASONING_TAIL_CHARS
from tests.filter.helpers import real_reasoning, trace


def rows() -> list[dict]:
    r = real_reasoning()
    out = [trace(f"r{i}", f"p{i}", 0, r[i], f"\\boxed{{{i}}}", tokens=300 + i) for i in range(6)]
    out[1]["finish_reason"] = "length"  # a readability reject
    out[2]["completion_tokens"] = None  # the length from the characters
    return out


def test_features_of_rows():
    every = rows()
    got = features(every, ReadabilityConfig(), DedupConfig())
    assert got["checks"] == [check_readability(row) for row in every]
    assert got["checks"][1][0] == "truncated" and got["checks"][0] is None
    assert got["lengths"] == [300, 301, len(every[2]["completion"]) // 4, 303, 304, 305]
    assert got["lengths"] == [preference_length(row) for row in every]
    assert got["digests"] == [exact_digest(row["reasoning"]) for row in every]
    assert np.array_equal(got["signatures"], np.stack([minhash_signature(row["reasoning"]) for row in every]))
    off = features(every, ReadabilityConfig(), DedupConfig(exact=False, near=False, field="content"))
    assert off["digests"] == [b""] * 6 and not off["signatures"].any()


def test_file_features_equal_the_features_of_the_same_rows(tmp_path, monkeypatch):
    every = rows()
    path = tmp_path / "t.parquet"
    pq.write_table(to_table(every, TRACE_SCHEMA), path)
    monkeypatch.setattr("distill.filter.features.READ_BATCH_ROWS", 4)  # rows 0-3, 4-5: two batches
    idx = [0, 2, 3, 5]
    got = file_features(path, idx, ReadabilityConfig(), DedupConfig(), tails=(1, 4))
    expected = features([every[i] for i in idx], ReadabilityConfig(), DedupConfig())
    for key in ("checks", "lengths", "digests"):
        assert got[key] == expected[key]
    assert np.array_equal(got["signatures"], expected["signatures"])
    assert got["empty_required"] is False
    assert got["tails"] == {i: every[i]["reasoning"][-REASONING_TAIL_CHARS:] for i in (1, 4)}
    none = file_features(path, [], ReadabilityConfig(), DedupConfig())
    assert none["signatures"].shape == (0, 128) and none["checks"] == []
    every[3]["completion"] = ""
    pq.write_table(to_table(every, TRACE_SCHEMA), path)
    assert file_features(path, [0], ReadabilityConfig(), DedupConfig())["empty_required"] is True
