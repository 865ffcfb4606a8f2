"""The records that cross every stage boundary, as Arrow schemas, in one place.

prompts -> traces -> filtered rows (verdict columns) -> SFT rows. Every stage imports its
schema from here; `docs/data.md` documents each field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

DOMAINS = ("math", "code", "science", "general")

# Input problems, after column mapping and validation.
PROMPT_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("problem", pa.string(), nullable=False),
    pa.field("answer", pa.string()),  # gold answer, if any
    pa.field("tests", pa.string()),  # code tests as a JSON string, if any
    pa.field("domain", pa.string(), nullable=False),  # one of DOMAINS
    pa.field("source", pa.string()),
]
PROMPT_SCHEMA = pa.schema(PROMPT_FIELDS)

# One row per teacher sample (written by `distill generate`).
TRACE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # hash(prompt_id, teacher, sampling, sample_index)
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        *PROMPT_FIELDS[1:],
        pa.field("prompt", pa.string(), nullable=False),  # the user turn exactly as the teacher saw it
        pa.field("reasoning", pa.string()),  # text inside <think>...</think>
        pa.field("content", pa.string()),  # text after </think> (null when the trace was cut off)
        pa.field("completion", pa.string(), nullable=False),  # raw generated text
        pa.field("finish_reason", pa.string()),  # "stop" | "length" | ...
        pa.field("prompt_tokens", pa.int32()),
        pa.field("completion_tokens", pa.int32()),
        pa.field("teacher", pa.string(), nullable=False),
        pa.field("sampling", pa.string(), nullable=False),  # JSON of the sampling settings
        # adaptive sampling (sampling.until_pass) only, else null: the prompt's samples and how
        # many of them passed generate's verification, and this sample's verdict there
        pa.field("prompt_samples", pa.int32()),
        pa.field("prompt_passed", pa.int32()),
        pa.field("generate_verdict", pa.string()),
    ]
)

# Added by `distill filter` to every row, kept or rejected.
VERDICT_FIELDS: list[pa.Field] = [
    pa.field("verdict", pa.string()),  # "pass" | "fail" | "error" | null (no verifier applies)
    pa.field("verdict_reason", pa.string()),
    pa.field("pass_rate", pa.float64()),  # share of this prompt's samples that passed
    pa.field("reject_stage", pa.string()),  # null on kept rows
    pa.field("reject_reason", pa.string()),
]
FILTERED_SCHEMA = pa.schema([*TRACE_SCHEMA, *VERDICT_FIELDS])

MESSAGE_TYPE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
# The SFT set: filtered rows plus the chat to train on.
SFT_SCHEMA = pa.schema([pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False), *FILTERED_SCHEMA])


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short, stable hex digest of the JSON encoding of `parts`."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def prompt_id_for(problem: str) -> str:
    """The id of a prompt that has none: a hash of its text."""
    return "p-" + stable_hash(problem)


def sample_id_for(prompt_id: str, teacher: str, sampling: Mapping[str, Any], sample_index: int) -> str:
    return "s-" + stable_hash(prompt_id, teacher, dict(sampling), sample_index)


def to_table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) to a table with exactly `schema`'s columns; missing keys become null."""
    rows = list(rows)
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast `table` to `schema`, adding missing nullable columns as nulls."""
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            arrays.append(table.column(field.name).cast(field.type))
        elif field.nullable:
            arrays.append(pa.nulls(table.num_rows, field.type))
        else:
            raise ValueError(f"missing required column {field.name!r}")
    return pa.Table.from_arrays(arrays, schema=schema)
