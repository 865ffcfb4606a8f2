"""Reading trace rows for `distill filter`: a `distill generate` folder, or trace Parquet/JSONL files.

Each input file is one unit of work (and of resume). Rows that are not usable traces (no id, no
completion, malformed JSON) are returned as rejects with their reason, never dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import UserError
from distill.inputs import JSONL_SUFFIXES, iter_jsonl
from distill.schema import TRACE_SCHEMA, conform, to_table

REQUIRED = ("id", "prompt_id", "completion")


def list_trace_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.is_file():
        return [path]
    data = path / "data"
    folder = data if data.is_dir() else path
    files = sorted(p for p in folder.iterdir() if p.suffix == ".parquet" or p.name.endswith(JSONL_SUFFIXES))
    if not files:
        raise UserError(f"{path}: no trace files (.parquet or .jsonl) found")
    if (path / "manifests").is_dir() and not (path / "manifest.json").exists():
        raise UserError(
            f"{path}: this generate folder is not complete (no manifest.json): finish `distill generate` first"
        )
    return files


def read_trace_file(path: Path) -> tuple[pa.Table, list[dict]]:
    """(the usable rows conformed to TRACE_SCHEMA, rejects as dicts with line and reason)."""
    rejects: list[dict] = []
    if path.suffix == ".parquet":
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserError(f"{path}: not a Parquet file ({exc})") from None
        missing = [c for c in REQUIRED if c not in table.column_names]
        if missing:
            raise UserError(f"{path}: not a trace file (missing column {missing[0]!r}; see docs/data.md)")
        rows = table.to_pylist()
        lines = range(1, len(rows) + 1)
    else:
        rows, lines = [], []
        for line, rec in iter_jsonl(path):
            if isinstance(rec, str):
                rejects.append({"file": str(path), "line": line, "reason": rec})
            else:
                rows.append(rec)
                lines.append(line)
    good = []
    for line, row in zip(lines, rows, strict=True):
        bad = next((c for c in REQUIRED if not row.get(c)), None)
        if bad:
            rejects.append({"file": str(path), "line": line, "id": row.get("id"), "reason": f"missing {bad}"})
            continue
        if isinstance(row.get("tests"), (list, dict)):
            row["tests"] = json.dumps(row["tests"])
        good.append(row)
    try:
        table = to_table(good, TRACE_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UserError(f"{path}: rows do not match the trace schema ({exc})") from None
    return conform(table, TRACE_SCHEMA), rejects
