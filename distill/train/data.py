"""SFT rows -> training tokens: read `messages`, render with the chat template, label, apply the length policy.

Labels are the token ids of the assistant turns (found by rendering, see template.py) and -100
everywhere else: system and user turns and the template's own markup before each assistant turn are
never trained on. A row is kept or dropped with a reason, and every reason is counted:

- bad_json, no_messages: a JSONL line that does not parse, or has no `messages` field;
- malformed_messages: not a list of {role: system|user|assistant, content: string};
- no_assistant_turn: nothing to train on;
- template_mismatch: the template renders this row inconsistently (see template.py);
- too_long: more than max_length tokens (cut to max_length instead with `truncate: true`);
- no_answer_tokens: with truncate, the cut left no assistant token.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import UserError
from distill.provenance import sha256_file
from distill.shards import data_files as shard_files
from distill.train.template import TemplateMismatch, assistant_spans, tokenize_with_spans

ROLES = ("system", "user", "assistant")
DATA_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")


@dataclass
class Conversations:
    """What was read: the conversations kept so far, where each came from, and what was dropped."""

    messages: list[list[dict[str, str]]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    fingerprint: str = ""
    manifest_sha256: str | None = None
    rows_read: int = 0

    def drop(self, origin: str, reason: str, **extra: Any) -> None:
        self.dropped.append({"source": origin, "reason": reason, **extra})

    def drop_counts(self) -> dict[str, int]:
        return dict(Counter(d["reason"] for d in self.dropped))

    @property
    def multi_turn(self) -> bool:
        """Whether any conversation has more than one assistant turn (the template is then probed with two)."""
        return any(sum(m["role"] == "assistant" for m in conv) > 1 for conv in self.messages)


def data_files(path: str | Path) -> list[Path]:
    """The training files at `path`: a file, a folder of them, or a distill output folder (sft/, mix/)."""
    path = Path(path).expanduser()
    if path.is_file() and not path.name.endswith(DATA_SUFFIXES):
        raise UserError(f"{path}: expected a .parquet, .jsonl or .jsonl.gz file")
    return shard_files(path, DATA_SUFFIXES, what="training data")


def normalize_messages(value: Any) -> list[dict[str, str]] | None:
    """A clean list of {role, content} dicts, or None when `value` is not a valid conversation."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, list) or not value:
        return None
    out = []
    for message in value:
        if not isinstance(message, dict):
            return None
        role, content = message.get("role"), message.get("content")
        if role not in ROLES or not isinstance(content, str):
            return None
        out.append({"role": role, "content": content})
    return out


def read_conversations(path: str | Path) -> Conversations:
    """Every conversation in the file or folder `path`; bad rows are counted, bad files are UserErrors."""
    files = data_files(path)
    conv = Conversations(files=[str(f) for f in files])
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        digest.update(sha256_file(f).encode())
        rows = _read_parquet(f) if f.name.endswith(".parquet") else _read_jsonl(f, conv)
        for index, value in rows:
            conv.rows_read += 1
            origin = f"{f.name}#{index}"
            messages = normalize_messages(value)
            if messages is None:
                conv.drop(origin, "malformed_messages")
            elif not any(m["role"] == "assistant" and m["content"] for m in messages):
                conv.drop(origin, "no_assistant_turn")
            else:
                conv.messages.append(messages)
                conv.origins.append(origin)
    manifest = Path(path) / "manifest.json"
    if manifest.is_file():
        conv.manifest_sha256 = sha256_file(manifest)
        digest.update(conv.manifest_sha256.encode())
    conv.fingerprint = digest.hexdigest()[:16]
    return conv


def tokenize_conversation(
    tokenizer: Any, template: str, messages: list[dict], max_length: int, truncate: bool
) -> tuple[list[int], list[int], str | None]:
    """(input_ids, labels, drop reason or None) for one conversation."""
    try:
        text, spans = assistant_spans(tokenizer, template, messages)
    except TemplateMismatch:
        return [], [], "template_mismatch"
    ids, labels = tokenize_with_spans(tokenizer, text, spans)
    if len(ids) > max_length:
        if not truncate:
            return ids, labels, "too_long"
        ids, labels = ids[:max_length], labels[:max_length]
    if all(label == -100 for label in labels):
        return ids, labels, "no_answer_tokens"
    return ids, labels, None


def tokenize_all(
    conv: Conversations,
    tokenizer: Any,
    template: str,
    max_length: int,
    truncate: bool,
    num_proc: int | None = None,
) -> tuple[Any, dict[str, int]]:
    """A datasets.Dataset of input_ids + labels for the kept rows; drops are added to `conv.dropped`.

    Returns the dataset and token counts (tokens, answer_tokens) of the kept rows.
    """
    from datasets import Dataset

    def _map(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {k: [] for k in ("input_ids", "labels", "reason", "length", "answer")}
        for messages in batch["messages"]:
            ids, labels, reason = tokenize_conversation(tokenizer, template, messages, max_length, truncate)
            keep = reason is None
            out["input_ids"].append(ids if keep else [])
            out["labels"].append(labels if keep else [])
            out["reason"].append(reason or "")
            out["length"].append(len(ids))
            out["answer"].append(sum(1 for t in labels if t != -100) if keep else 0)
        return out

    raw = Dataset.from_dict({"messages": conv.messages})
    mapped = raw.map(_map, batched=True, batch_size=64, num_proc=num_proc, remove_columns=["messages"])
    reasons, lengths, answers = mapped["reason"], mapped["length"], mapped["answer"]
    kept = []
    for i, (origin, reason) in enumerate(zip(conv.origins, reasons, strict=True)):
        if reason:
            conv.drop(origin, reason, tokens=lengths[i])
        else:
            kept.append(i)
    dataset = mapped.select(kept).select_columns(["input_ids", "labels"]).flatten_indices()
    stats = {"tokens": sum(lengths[i] for i in kept), "answer_tokens": sum(answers[i] for i in kept)}
    return dataset, stats


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    if "messages" not in pf.schema_arrow.names:
        raise UserError(f"{path}: no `messages` column (columns: {', '.join(pf.schema_arrow.names)})")
    index = 0
    for batch in pf.iter_batches(columns=["messages"], batch_size=1024):
        for value in batch.column(0).to_pylist():
            yield index, value
            index += 1


def _read_jsonl(path: Path, conv: Conversations):
    opener = gzip.open if path.name.endswith(".gz") else open
    seen_messages = False
    lines = 0
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for index, line in enumerate(fh):
                if not line.strip():
                    continue
                lines += 1
                try:
                    row = json.loads(line)
                except ValueError:
                    conv.rows_read += 1
                    conv.drop(f"{path.name}#{index}", "bad_json")
                    continue
                if not isinstance(row, dict) or "messages" not in row:
                    conv.rows_read += 1
                    conv.drop(f"{path.name}#{index}", "no_messages")
                    continue
                seen_messages = True
                yield index, row["messages"]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    if lines and not seen_messages:
        raise UserError(f"{path}: no row has a `messages` field")
