"""Reading SFT rows, assistant-only labels, the length policy, bad input."""

from __future__ import annotations

import json

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


def test_overlong_rows_are_dropped_and_counted(tokenizer, tmp_path):
    rows = gsm8k_rows(6)
    rows[2]["messages"][1]["content"] = "<think>\n" + "very long reasoning " * 400 + "\n</think>\n\n7"
    conv = read_conversations(write_jsonl(tmp_path / "d.jsonl", rows))
    dataset, stats = tokenize_all(conv, tokenizer, tokenizer.chat_template, max_length=512, truncate=False)
    assert len(dataset) == 5
    assert conv.drop_counts() == {"too_long": 1}
    assert conv.dropped[0]["source"] == "d.jsonl#2" and conv.dropped[0]["tokens"] > 512
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
    assert len(conv.messages) == 5 and conv.rows_read == 5
    assert conv.manifest_sha256 and len(conv.fingerprint) == 16
    assert conv.origins[3] == "shard-00001.parquet#0"
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
    assert len(conv.messages) == 2 and conv.rows_read == 9
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
