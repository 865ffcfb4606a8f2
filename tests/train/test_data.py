"""Reading SFT rows, assistant-only labels, the length policy, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.train.data import normalize_messages, read_conversations, tokenize_all, tokenize_conversation

from .conftest import gsm8k_rows, write_jsonl, write_parquet

SYSTEM = {"role": "system", "content": "Be brief."}


def test_labels_cover_only_assistant_turns(tokenizer):
    template = tokenizer.chat_template
    messages = [
        SYSTEM,
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": "<think>\n2 plus 3 is 5\n</think>\n\n5"},
        {"role": "user", "content": "Times 2?"},
        {"role": "assistant", "content": "<think>\n5 times 2\n</think>\n\n10"},
    ]
    ids, labels, reason = tokenize_conversation(tokenizer, template, messages, 4096, False)
    assert reason is None and len(ids) == len(labels)
    assert labels[0] == -100  # the text starts with the system turn
    # Every labelled token is the input token at that position (no shift: the model shifts).
    assert all(label in (-100, tok) for tok, label in zip(ids, labels, strict=True))
    # The labelled stretches, decoded, are exactly the two assistant contents plus their end of turn.
    spans, current = [], []
    for tok, label in zip(ids, labels, strict=True):
        if label == -100:
            if current:
                spans.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        spans.append(current)
    decoded = [tokenizer.decode(s) for s in spans]
    assert decoded == [
        "<think>\n2 plus 3 is 5\n</think>\n\n5<|im_end|>\n",
        "<think>\n5 times 2\n</think>\n\n10<|im_end|>\n",
    ]
    masked = tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab == -100])
    assert "Be brief." in masked and "What is 2+3?" in masked and "Times 2?" in masked
    assert masked.count("<|im_start|>assistant\n") == 2  # the generation prompt is context, not target


@pytest.mark.parametrize("num_proc", [None, 2])
def test_overlong_rows_are_dropped_and_counted(tokenizer, tmp_path, num_proc):
    rows = gsm8k_rows(6)
    for i in (2, 5):
        rows[i]["messages"][1]["content"] = "<think>\n" + "very long reasoning " * 400 + "\n</think>\n\n7"
    conv = read_conversations(write_jsonl(tmp_path / "d.jsonl", rows))
    dataset, stats = tokenize_all(
        conv, tokenizer, tokenizer.chat_template, max_length=512, truncate=False, num_proc=num_proc
    )
    assert len(dataset) == 4
    assert conv.drop_counts() == {"too_long": 2}
    assert [d["source"] for d in conv.dropped] == ["d.jsonl#2", "d.jsonl#5"]  # in row order, any num_proc
    assert conv.dropped[0]["tokens"] > 512
    assert max(len(x) for x in dataset["input_ids"]) <= 512
    assert stats["tokens"] == sum(len(x) for x in dataset["input_ids"])
    assert stats["answer_tokens"] == sum(sum(t != -100 for t in row) for row in dataset["labels"])


def test_truncate_keeps_the_start(tokenizer, tmp_path):
    rows = gsm8k_rows(2)
    rows[1]["messages"][1]["content"] = "<think>\n" + "very long reasoning " * 400 + "\n</think>\n\n7"
    rows.append(
        {"messages": [{"role": "user", "content": "x " * 600}, {"role": "assistant", "content": "y"}]}
    )
    conv = read_conversations(write_jsonl(tmp_path / "d.jsonl", rows))
    dataset, _ = tokenize_all(conv, tokenizer, tokenizer.chat_template, max_length=512, truncate=True)
    assert len(dataset) == 2 and len(dataset[1]["input_ids"]) == 512
    assert conv.drop_counts() == {"no_answer_tokens": 1}  # the cut left only prompt tokens


def test_parquet_folder_with_manifest(tmp_path):
    folder = tmp_path / "sft"
    write_parquet(folder / "shard-00000.parquet", gsm8k_rows(3))
    write_parquet(folder / "shard-00001.parquet", gsm8k_rows(2, start=3))
    (folder / "manifest.json").write_text(json.dumps({"rows": 5}))
    conv = read_conversations(folder)
    assert len(conv) == 5 and conv.table().num_rows == 5 and conv.rows_read == 5
    assert conv.manifest_sha256 and len(conv.fingerprint) == 16
    assert conv.table()["origin"][3].as_py() == "shard-00001.parquet#0"
    (folder / "manifest.json").write_text(json.dumps({"rows": 6}))
    assert read_conversations(folder).fingerprint != conv.fingerprint


def test_malformed_rows_are_counted_not_fatal(tmp_path):
    good = gsm8k_rows(1)[0]
    lines = [
        good,
        "{not json",
        {"prompt": "no messages here"},
        {"messages": "not a list"},
        {"messages": [{"role": "user", "content": 3}]},
        {"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"messages": []},
        {"messages": json.dumps(good["messages"])},  # a JSON string is accepted
    ]
    conv = read_conversations(write_jsonl(tmp_path / "d.jsonl", lines))
    assert len(conv) == 2 and conv.rows_read == 9
    assert conv.drop_counts() == {
        "bad_json": 1,
        "no_messages": 1,
        "malformed_messages": 4,
        "no_assistant_turn": 1,
    }


def test_normalize_messages_drops_extra_keys():
    assert normalize_messages([{"role": "user", "content": "a", "name": "x"}]) == [
        {"role": "user", "content": "a"}
    ]
    assert normalize_messages(None) is None


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda p: p / "missing", "not found"),
        (lambda p: write_jsonl(p / "x.jsonl", [{"prompt": "a"}]), "no row has a `messages` field"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no .parquet"),
        (lambda p: (p / "x.csv").write_text("a,b") and p / "x.csv", "expected a .parquet"),
    ],
)
def test_bad_input_is_a_user_error(tmp_path, setup, match):
    with pytest.raises(UserError, match=match):
        read_conversations(setup(tmp_path))


def test_parquet_without_messages_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"problem": ["a"]}), tmp_path / "x.parquet")
    with pytest.raises(UserError, match="no `messages` column"):
        read_conversations(tmp_path / "x.parquet")
    (tmp_path / "y.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="not a readable Parquet"):
        read_conversations(tmp_path / "y.parquet")


def test_a_filter_output_folder_is_read_from_its_data_subfolder(tmp_path):
    """`distill filter` writes sft/data/train-*.parquet and sft/manifest.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.train.data import data_files

    (tmp_path / "sft" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), tmp_path / "sft" / "data" / "train-00000-of-00001.parquet")
    (tmp_path / "sft" / "manifest.json").write_text("{}")
    assert data_files(tmp_path / "sft") == [tmp_path / "sft" / "data" / "train-00000-of-00001.parquet"]


def test_rank_1_reads_no_conversation(tokenizer, tiny_config, tmp_path, monkeypatch):
    """Rank 0 reads and tokenizes; another rank of the same launch takes everything from its cache.

    The second rank runs after rank 0 (as under `main_process_first`) with the data folder gone
    and the reading functions booby-trapped: it must still get rank 0's rows, drops and counts.
    """
    import shutil

    import distill.train.run as run

    rows = gsm8k_rows(10)
    rows[4]["messages"][1]["content"] = "<think>\n" + "long " * 800 + "\n</think>\n\n1"
    data = write_jsonl(tmp_path / "sft" / "rows.jsonl", [*rows, "{broken", {"prompt": "x"}])
    config = tiny_config(data=str(data))
    out = Path(config.output)

    monkeypatch.setenv("RANK", "0")
    conv0, choice0, _, dataset0, stats0, timings0 = run._prepare_data(config, tokenizer_copy(tokenizer), out)
    assert timings0["read"] == "files" and timings0["tokens"] == "tokenized"
    assert conv0.drop_counts() == {"bad_json": 1, "no_messages": 1, "too_long": 1} and len(dataset0) == 9

    shutil.rmtree(tmp_path / "sft")  # rank 1 cannot read the conversations even if it tried

    def trap(*args, **kwargs):
        raise AssertionError("rank 1 touched the training data")

    monkeypatch.setattr(run, "read_conversations", trap)
    monkeypatch.setattr(run, "data_fingerprint", trap)
    monkeypatch.setenv("RANK", "1")
    conv1, choice1, _, dataset1, stats1, timings1 = run._prepare_data(config, tokenizer_copy(tokenizer), out)
    assert timings1["read"].startswith("rank 0's") and timings1["tokens"] == "rank 0's cache"
    assert "read_s" not in timings1 and "tokenize_s" not in timings1
    assert dataset1["input_ids"] == dataset0["input_ids"] and dataset1["labels"] == dataset0["labels"]
    assert stats1 == stats0 and conv1.dropped == conv0.dropped and choice1.template == choice0.template
    assert (conv1.fingerprint, conv1.rows_read, conv1.files) == (conv0.fingerprint, 12, conv0.files)
    assert not (out / ".tokenized" / "rank-1").exists()  # nothing read or tokenized on its own

    # Without rank 0's pointer (no shared output folder), a rank reads the data itself.
    (out / ".tokenized" / "current.json").unlink()
    with pytest.raises(AssertionError, match="touched the training data"):
        run._prepare_data(config, tokenizer_copy(tokenizer), out)


def tokenizer_copy(tokenizer):
    import copy

    return copy.deepcopy(tokenizer)
