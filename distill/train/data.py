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

Arrow end to end, in batches: `read_conversations` streams the files (Parquet record batches, JSONL
lines) BATCH_ROWS rows at a time, validates each row and appends the usable conversations to an
Arrow IPC file (`conversations.arrow`, record batches of MAP_BATCH rows, with each row's origin
`file#row`); `tokenize_all` runs `datasets.map(batched=True, num_proc=...)` over the indices of
those record batches: each worker reads its batches one at a time with an ordinary (not
memory-mapped) reader and writes input_ids + labels (int32) of the kept rows into Arrow files. No
process holds every conversation in Python, and none keeps the text it has read mapped: the
multi-turn check and the drop accounting (counts, and one small record per dropped row) are done
batch by batch; memory grows with the batch, not with the data.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import UserError
from distill.provenance import sha256_file
from distill.shards import data_files as shard_files
from distill.train.template import TemplateMismatch, assistant_spans, tokenize_with_spans

ROLES = ("system", "user", "assistant")
DATA_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")
BATCH_ROWS = 1024  # rows read from a file at a time
MAP_BATCH = 64  # rows per record batch of conversations.arrow
TOKEN_BATCH = 1024  # rows per tokenization call = per record batch of tokens*.arrow (see tokenize_all)
CONVERSATIONS = "conversations.arrow"
READ_SUMMARY = "read.json"
TOKENS_META = "meta.json"


@dataclass
class Conversations:
    """What was read: counts, the fingerprint, what was dropped, and where the kept rows are.

    The kept conversations themselves are in the Arrow IPC file `path` (columns `messages` and
    `origin`), or None for a summary loaded without them (a process that uses a cache).
    """

    files: list[str] = field(default_factory=list)
    fingerprint: str = ""
    manifest_sha256: str | None = None
    rows_read: int = 0
    rows_kept: int = 0  # rows that passed reading (before tokenization)
    multi_turn: bool = False  # some conversation has 2+ assistant turns (the template probe uses two)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    path: str | None = None
    _tmp: list[Any] = field(default_factory=list, repr=False)  # temporary folders the files live in

    def drop(self, origin: str, reason: str, **extra: Any) -> None:
        self.dropped.append({"source": origin, "reason": reason, **extra})

    def drop_counts(self) -> dict[str, int]:
        return dict(Counter(d["reason"] for d in self.dropped))

    def __len__(self) -> int:
        return self.rows_kept

    def table(self) -> Any:
        """The kept conversations as one pyarrow Table (read into memory: for small sets and tests)."""
        import pyarrow as pa

        with pa.OSFile(str(self.path)) as source:
            return pa.ipc.open_file(source).read_all()

    def summary(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "fingerprint": self.fingerprint,
            "manifest_sha256": self.manifest_sha256,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "multi_turn": self.multi_turn,
            "dropped": self.dropped,
        }

    @classmethod
    def load(cls, folder: Path, with_rows: bool = True) -> Conversations | None:
        """What `read_conversations(..., folder)` wrote there (None when it is not complete)."""
        summary = folder / READ_SUMMARY
        if not summary.is_file() or (with_rows and not (folder / CONVERSATIONS).is_file()):
            return None
        conv = cls(**json.loads(summary.read_text(encoding="utf-8")))
        if with_rows:
            conv.path = str(folder / CONVERSATIONS)
        return conv


def data_files(path: str | Path) -> list[Path]:
    """The training files at `path`: a file, a folder of them, or a distill output folder (sft/, mix/)."""
    path = Path(path).expanduser()
    if path.is_file() and not path.name.endswith(DATA_SUFFIXES):
        raise UserError(f"{path}: expected a .parquet, .jsonl or .jsonl.gz file")
    return shard_files(path, DATA_SUFFIXES, what="training data")


def data_fingerprint(path: str | Path) -> tuple[list[Path], str, str | None]:
    """(files, fingerprint, sha256 of the folder's manifest.json): the files' names and bytes hashed, no row parsed."""
    files = data_files(path)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        digest.update(sha256_file(f).encode())
    manifest = Path(path) / "manifest.json"
    manifest_sha256 = None
    if manifest.is_file():
        manifest_sha256 = sha256_file(manifest)
        digest.update(manifest_sha256.encode())
    return files, digest.hexdigest()[:16], manifest_sha256


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


def read_conversations(path: str | Path, folder: str | Path | None = None) -> Conversations:
    """Every usable conversation in the file or folder `path`, written to `folder`/conversations.arrow.

    Bad rows are counted, bad files are UserErrors. Without `folder`, a temporary one (removed with
    the returned object). `folder`/read.json gets the summary (`Conversations.load` reads both back).
    """
    import pyarrow as pa

    from distill.schema import MESSAGE_TYPE

    conversation_type = pa.list_(MESSAGE_TYPE)
    files, fingerprint, manifest_sha256 = data_fingerprint(path)
    conv = Conversations(
        files=[str(f) for f in files], fingerprint=fingerprint, manifest_sha256=manifest_sha256
    )
    if folder is None:
        conv._tmp.append(tempfile.TemporaryDirectory(prefix="distill-conversations-"))
        folder = conv._tmp[-1].name
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / CONVERSATIONS
    partial = target.with_name(target.name + ".partial")
    schema = pa.schema([pa.field("messages", conversation_type), pa.field("origin", pa.string())])
    with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        messages: list[list[dict[str, str]]] = []
        origins: list[str] = []

        def flush() -> None:
            if messages:
                batch = pa.record_batch(
                    [pa.array(messages, type=conversation_type), pa.array(origins, type=pa.string())],
                    schema=schema,
                )
                writer.write_batch(batch)
                messages.clear()
                origins.clear()

        for f in files:
            rows = _read_parquet(f) if f.name.endswith(".parquet") else _read_jsonl(f, conv)
            for index, value in rows:
                conv.rows_read += 1
                origin = f"{f.name}#{index}"
                normalized = normalize_messages(value)
                if normalized is None:
                    conv.drop(origin, "malformed_messages")
                    continue
                answers = sum(m["role"] == "assistant" for m in normalized)
                if not any(m["role"] == "assistant" and m["content"] for m in normalized):
                    conv.drop(origin, "no_assistant_turn")
                    continue
                conv.multi_turn = conv.multi_turn or answers > 1
                messages.append(normalized)
                origins.append(origin)
                conv.rows_kept += 1
                if len(messages) >= MAP_BATCH:
                    flush()
        flush()
    partial.replace(target)
    (folder / READ_SUMMARY).write_text(json.dumps(conv.summary()), encoding="utf-8")
    conv.path = str(target)
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
    folder: str | Path | None = None,
    fingerprint: str | None = None,
) -> tuple[Any, dict[str, int]]:
    """A datasets.Dataset of input_ids + labels for the kept rows; drops are added to `conv.dropped`.

    The record batches of `conv.path` are tokenized (`num_proc` processes, each reading its
    batches one at a time) straight into Arrow files in `folder` (tokens*.arrow; a temporary
    folder when None), which the returned dataset memory-maps. Each worker appends a line per batch to batches-RANK.jsonl there: the batch's
    drops and token counts, so that nothing reads the tokens back (this process never touches
    their pages). The drops are added to `conv.dropped` in row order. Returns the dataset and token
    counts (tokens, answer_tokens) of the kept rows.
    """
    from datasets import Dataset, Features, List, Value

    if conv.path is None:
        raise ValueError(
            "tokenize_all needs the conversations themselves (read_conversations), not a summary"
        )
    if folder is None:
        conv._tmp.append(tempfile.TemporaryDirectory(prefix="distill-tokens-"))  # lives as long as `conv`
        folder = conv._tmp[-1].name
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("tokens*.arrow"), *folder.glob("batches-*.jsonl"), folder / TOKENS_META]:
        stale.unlink(missing_ok=True)

    path = conv.path

    def _map(batch: dict[str, list], rank: int | None = None) -> dict[str, list]:
        import numpy as np

        out: dict[str, list] = {"input_ids": [], "labels": []}
        record: dict[str, Any] = {"tokens": 0, "answer_tokens": 0, "dropped": []}
        for index in batch["batch"]:  # one record batch of conversations at a time
            columns = _conversation_batch(path, index)
            for messages, origin in zip(columns["messages"], columns["origin"], strict=True):
                ids, labels, reason = tokenize_conversation(
                    tokenizer, template, messages, max_length, truncate
                )
                if reason is not None:
                    record["dropped"].append({"source": origin, "reason": reason, "tokens": len(ids)})
                    continue
                labels_np = np.asarray(
                    labels, dtype=np.int32
                )  # int32 arrays: 4 bytes a token, not a Python int
                out["input_ids"].append(np.asarray(ids, dtype=np.int32))
                out["labels"].append(labels_np)
                record["tokens"] += len(ids)
                record["answer_tokens"] += int((labels_np != -100).sum())
        with open(folder / f"batches-{rank or 0:05d}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        return out

    features = Features({"input_ids": List(Value("int32")), "labels": List(Value("int32"))})
    indices = Dataset.from_dict({"batch": list(range(_batch_count(path)))})
    num_proc = num_proc if num_proc and num_proc > 1 and len(indices) > 1 else None
    mapped = indices.map(
        _map,
        batched=True,
        # TOKEN_BATCH rows per call, written as one record batch: a reader of the tokens (rank 0, the
        # other ranks) touches pages around each record batch's header, ~64 KB each, so small
        # batches would make the memory-mapped tokens cost ~1 KB of RSS per row.
        batch_size=TOKEN_BATCH // MAP_BATCH,
        writer_batch_size=TOKEN_BATCH,
        num_proc=num_proc,
        with_rank=True,
        remove_columns=["batch"],
        features=features,
        cache_file_name=str(folder / "tokens.arrow"),
        new_fingerprint=fingerprint or hashlib.sha256(str(folder).encode()).hexdigest()[:16],
        desc="tokenizing",
    )
    _READER.clear()  # this process's reader, when it tokenized itself (num_proc 1)
    stats = {"tokens": 0, "answer_tokens": 0}
    for batches in sorted(folder.glob("batches-*.jsonl")):  # shard order = row order
        with open(batches, encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                stats["tokens"] += record["tokens"]
                stats["answer_tokens"] += record["answer_tokens"]
                conv.dropped.extend(record["dropped"])
    return mapped, stats  # memory-mapped from tokens*.arrow (mapped.cache_files)


_READER: dict[str, Any] = {}  # this process's open reader of a conversations file


def _open_conversations(path: str) -> Any:
    """An IPC file reader of `path` (ordinary reads, no memory map), kept open while the file is the same."""
    import pyarrow as pa

    stat = os.stat(path)
    key = f"{path}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    if _READER.get("key") != key:
        _READER.clear()
        _READER.update(key=key, reader=pa.ipc.open_file(pa.OSFile(path)))
    return _READER["reader"]


def _batch_count(path: str) -> int:
    """Record batches in a conversations file (opened and closed here: forked workers open their own)."""
    import pyarrow as pa

    with pa.OSFile(path) as source:
        return pa.ipc.open_file(source).num_record_batches


def _conversation_batch(path: str, index: int) -> dict[str, list]:
    """Record batch `index` of a conversations file as Python lists (read now, freed after use)."""
    return _open_conversations(path).get_batch(index).to_pydict()


def load_tokens(folder: Path, names: list[str]) -> Any:
    """The tokenized dataset in `folder` (the Arrow files `names`), memory-mapped."""
    return _load_arrow([Path(folder) / name for name in names])


def _load_arrow(paths: list[Path]) -> Any:
    from datasets import Dataset, concatenate_datasets

    parts = [Dataset.from_file(str(p)) for p in paths]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _read_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    if "messages" not in pf.schema_arrow.names:
        raise UserError(f"{path}: no `messages` column (columns: {', '.join(pf.schema_arrow.names)})")
    index = 0
    for batch in pf.iter_batches(columns=["messages"], batch_size=BATCH_ROWS):
        for value in batch.column(0).to_pylist():
            yield index, value
            index += 1


def _read_jsonl(path: Path, conv: Conversations) -> Iterator[tuple[int, Any]]:
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
