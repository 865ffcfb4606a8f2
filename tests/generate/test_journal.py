"""The per-shard journal on real files: what is flushed reads back exactly; a torn, foreign or
interrupted write loses nothing that was flushed and adds nothing."""

from __future__ import annotations

import pyarrow as pa
import pytest

from distill.generate.journal import Journal


def rows_for(prompt: int, n: int = 2) -> list[dict]:
    return [
        {
            "id": f"p{prompt}-s{j}",
            "prompt_id": f"p{prompt}",
            "sample_index": j,
            "problem": f"problem {prompt}",
            "completion": f"answer {prompt}.{j}",
            "completion_tokens": 10 + j,
            "teacher": "t",
            "sampling": "{}",
        }
        for j in range(n)
    ]


def test_flushed_requests_read_back_exactly(tmp_path):
    j = Journal(tmp_path, num_shards=3, fingerprint="abc")
    j.add(1, 4, rows_for(4))
    j.add(1, 5, rows_for(5, n=3))
    j.add(2, 8, rows_for(8))
    j.add(1, 6, [], reject={"id": "p6", "reason": "prompt too long"})
    assert j.flush() == 4
    j.add(1, 7, rows_for(7))
    assert j.flush() == 1
    got = j.load(1)
    assert sorted(got.rows) == [4, 5, 6, 7] and got.segments == 2
    assert got.rows[5] == [_nulls(r) for r in rows_for(5, n=3)]
    assert got.rows[6] == [] and got.rejected == {6: {"id": "p6", "reason": "prompt too long"}}
    assert sorted(j.load(2).rows) == [8] and j.load(0).rows == {}


def _nulls(row: dict) -> dict:
    """The trace schema's other columns read back as nulls."""
    from distill.schema import TRACE_SCHEMA

    return {f.name: row.get(f.name) for f in TRACE_SCHEMA}


def test_unflushed_requests_are_not_on_disk(tmp_path):
    j = Journal(tmp_path, num_shards=1, fingerprint="abc", flush_seconds=3600, flush_requests=3)
    j.add(0, 0, rows_for(0))
    j.add(0, 1, rows_for(1))
    assert not j.due()
    assert Journal(tmp_path, 1, "abc").load(0).rows == {}
    j.add(0, 2, rows_for(2))
    assert j.due()  # flush_requests reached
    j.flush()
    assert sorted(Journal(tmp_path, 1, "abc").load(0).rows) == [0, 1, 2]


def test_segments_of_other_settings_or_torn_are_ignored(tmp_path):
    old = Journal(tmp_path, 2, fingerprint="old")
    old.add(0, 0, rows_for(0))
    old.flush()
    j = Journal(tmp_path, 2, fingerprint="new")
    j.add(0, 1, rows_for(1))
    j.flush()
    seg = sorted(j.shard_dir(0).glob("seg-*.arrow"))
    assert len(seg) == 2
    torn = j.shard_dir(0) / "seg-99999999999999999999-1-000001.arrow"
    torn.write_bytes(seg[0].read_bytes()[:100])  # a file cut short (no rename makes this, a disk can)
    got = j.load(0)
    assert sorted(got.rows) == [1] and got.segments == 1 and got.unreadable == 2


def test_an_interrupted_flush_keeps_the_requests_pending(tmp_path, monkeypatch):
    j = Journal(tmp_path, 1, "abc")
    j.add(0, 0, rows_for(0))
    real = pa.ipc.new_file

    def boom(*a, **k):
        raise KeyboardInterrupt  # what a signal landing mid-write looks like

    monkeypatch.setattr(pa.ipc, "new_file", boom)
    with pytest.raises(KeyboardInterrupt):
        j.flush()
    monkeypatch.setattr(pa.ipc, "new_file", real)
    assert j.load(0).rows == {}
    assert j.flush() == 1  # the `finally` flush writes it
    assert sorted(j.load(0).rows) == [0]


def test_discard_removes_a_sealed_shards_journal(tmp_path):
    j = Journal(tmp_path, 2, "abc")
    j.add(0, 0, rows_for(0))
    j.add(1, 3, rows_for(3))
    j.flush()
    j.discard(0)
    assert j.load(0).rows == {} and sorted(j.load(1).rows) == [3]
    j.remove_if_empty()
    assert j.dir.is_dir()  # shard 1's journal is still there
    j.discard(1)
    j.remove_if_empty()
    assert not j.dir.exists()
