import json

import pyarrow as pa
import pytest

from distill.errors import UserError
from distill.shards import MANIFEST, ShardStore, merge_manifests, shard_name


def table(n, start=0):
    return pa.table({"id": [f"s{i}" for i in range(start, start + n)]})


def test_seal_records_and_reads_back(tmp_path):
    store = ShardStore(tmp_path, {"v": 1}, num_shards=2)
    store.open()
    assert not store.is_sealed(0)
    rec = store.seal(0, table(3), {"prompts": 3})
    assert rec["rows"] == 3 and len(rec["sha256"]) == 64
    assert (tmp_path / shard_name(0, 2)).name == "train-00000-of-00002.parquet"
    assert store.is_sealed(0) and not store.is_sealed(1)
    # a new store over the same folder sees the sealed shard
    again = ShardStore(tmp_path, {"v": 1}, num_shards=2)
    again.open()
    assert again.is_sealed(0)
    assert merge_manifests(tmp_path) is None  # shard 1 missing: no manifest.json
    assert not (tmp_path / MANIFEST).exists()


def test_truncated_or_unrecorded_shard_does_not_count(tmp_path):
    store = ShardStore(tmp_path, {"v": 1}, num_shards=2)
    store.open()
    store.seal(0, table(100), {})
    path = tmp_path / shard_name(0, 2)
    path.write_bytes(path.read_bytes()[:-50])
    assert not store.is_sealed(0)
    # a shard file that no manifest names does not count either
    (tmp_path / shard_name(1, 2)).write_bytes(b"PAR1 not really")
    assert not store.is_sealed(1)


def test_changed_identity_is_refused_with_the_difference(tmp_path):
    ShardStore(tmp_path, {"teacher": "a", "t": 0.6}, num_shards=1).open()
    with pytest.raises(UserError, match=r"teacher: was 'a', now 'b'.*new --output"):
        ShardStore(tmp_path, {"teacher": "b", "t": 0.6}, num_shards=1).open()


def test_workers_write_disjoint_manifests_and_merge_without_coordination(tmp_path):
    stores = [ShardStore(tmp_path, {"v": 1}, num_shards=5, worker_index=i, num_workers=2) for i in range(2)]
    for s in stores:
        s.open()
    for k in range(5):
        stores[k % 2].seal(k, table(2, start=2 * k), {"prompts": 2})
    docs = [json.loads(s.worker_file.read_text()) for s in stores]
    assert sorted(docs[0]["shards"]) == [shard_name(k, 5) for k in (0, 2, 4)]
    assert sorted(docs[1]["shards"]) == [shard_name(k, 5) for k in (1, 3)]
    manifest = merge_manifests(tmp_path)
    assert manifest["complete"] and manifest["totals"]["rows"] == 10 and manifest["totals"]["prompts"] == 10
    assert len(manifest["shards"]) == 5
    # merging again gives the same shard records
    assert merge_manifests(tmp_path)["shards"] == manifest["shards"]


def test_leftover_partial_file_is_removed_on_open(tmp_path):
    store = ShardStore(tmp_path, {"v": 1}, num_shards=1)
    store.open()
    partial = tmp_path / "data" / ".train-00000-of-00001.parquet.tmp-123"
    partial.write_bytes(b"half a shard")
    ShardStore(tmp_path, {"v": 1}, num_shards=1).open()
    assert not partial.exists()


def test_open_removes_only_this_workers_partial_files(tmp_path):
    ShardStore(tmp_path, {"v": 1}, num_shards=4, worker_index=0, num_workers=2).open()
    mine = tmp_path / "data" / ".train-00002-of-00004.parquet.tmp-11"
    theirs = tmp_path / "data" / ".train-00001-of-00004.parquet.tmp-12"
    for p in (mine, theirs):
        p.write_bytes(b"partial")
    ShardStore(tmp_path, {"v": 1}, num_shards=4, worker_index=0, num_workers=2).open()
    assert not mine.exists() and theirs.exists()  # worker 1 may be writing shard 1 right now


def test_an_output_path_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(UserError, match=r"cannot create the output folder .*taken"):
        ShardStore(tmp_path / "taken" / "work", {"stage": "t"}, 1).open()


def test_data_files_knows_the_output_layout(tmp_path):
    from distill.shards import data_files

    stage = tmp_path / "generate"
    (stage / "data").mkdir(parents=True)
    for name in ("train-00001-of-00002.parquet", "train-00000-of-00002.parquet", ".x.parquet.tmp-1"):
        (stage / "data" / name).write_bytes(b"")
    assert [p.name for p in data_files(stage)] == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    filtered = tmp_path / "filter"
    (filtered / "sft" / "data").mkdir(parents=True)
    (filtered / "sft" / "data" / "train-00000-of-00001.parquet").write_bytes(b"")
    assert (
        data_files(filtered)
        == data_files(filtered / "sft")
        == [filtered / "sft" / "data" / "train-00000-of-00001.parquet"]
    )
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "b.jsonl").write_text("{}\n")
    (plain / "a.parquet").write_bytes(b"")
    (plain / "notes.txt").write_text("")
    assert [p.name for p in data_files(plain, (".parquet", ".jsonl"))] == ["a.parquet", "b.jsonl"]
    assert data_files(plain / "notes.txt") == [plain / "notes.txt"]  # a file is itself


def test_data_files_errors_name_what_is_missing(tmp_path):
    from distill.shards import data_files

    with pytest.raises(UserError, match="training data not found"):
        data_files(tmp_path / "nope", what="training data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no \.parquet or \.jsonl files in this folder"):
        data_files(tmp_path / "empty", (".parquet", ".jsonl"))
    assert data_files(tmp_path / "empty", allow_empty=True) == []
    unfinished = tmp_path / "unfinished"
    (unfinished / "manifests").mkdir(parents=True)
    (unfinished / "data").mkdir()
    (unfinished / "data" / "train-00000-of-00002.parquet").write_bytes(b"")
    assert len(data_files(unfinished)) == 1
    with pytest.raises(UserError, match="not complete"):
        data_files(unfinished, complete=True)
