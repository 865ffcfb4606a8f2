"""Reading problems: JSONL, Parquet, a `datasets` folder or a hub dataset, into PROMPT_SCHEMA rows.

Every input row ends up either as a prompt or as a rejection with its file, line and reason:
malformed JSON, invalid UTF-8, a missing or empty problem, a duplicate id, an unknown domain.
A file that is not the format it claims, or a missing path, is an `InputError` (one line, exit 2).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from distill.config import StrictModel
from distill.errors import UserError
from distill.schema import DOMAINS, PROMPT_SCHEMA, prompt_id_for

BOM = b"\xef\xbb\xbf"
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")


class InputError(UserError):
    """An input that cannot be read at all (missing, or not the format it claims)."""


class ColumnMap(StrictModel):
    """Which input column holds each prompt field (e.g. GSM8K's problem is `question`)."""

    problem: str = "problem"
    id: str = "id"
    answer: str = "answer"
    tests: str = "tests"
    domain: str = "domain"
    source: str = "source"
    entry_point: str = "entry_point"


class InputConfig(StrictModel):
    path: str | None = Field(
        None, description="A JSONL/Parquet file, a folder of them, or a datasets folder."
    )
    format: Literal["auto", "jsonl", "parquet", "datasets", "hub"] = Field(
        "auto", description="auto: from the suffix or folder contents; hub: a Hugging Face dataset name."
    )
    split: str = Field("train", description="Split of a datasets folder or hub dataset.")
    columns: ColumnMap = Field(default_factory=ColumnMap)
    answer_format: Literal["plain", "gsm8k"] = Field(
        "plain", description="gsm8k: the gold answer is the text after the last '#### '."
    )
    tests_format: Literal["json", "humaneval"] = Field(
        "json",
        description="json: the tests column is the JSON of docs/data.md; humaneval: it holds assert code "
        "defining check(candidate), and columns.entry_point names the function to check.",
    )
    domain: Literal["math", "code", "science", "general"] = Field(
        "math", description="Domain of rows that have no domain column."
    )
    source: str | None = Field(None, description="Source of rows that have none (default: the file name).")
    skip: int = Field(0, ge=0, description="Skip the first N valid prompts (e.g. held-out problems).")
    limit: int | None = Field(None, ge=1, description="Use only the first N valid prompts (after skip).")


@dataclass(frozen=True, slots=True)
class Reject:
    file: str
    line: int | None
    reason: str
    id: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class PromptSet:
    table: pa.Table  # PROMPT_SCHEMA, in input order
    rejects: list[Reject]
    rows_read: int
    truncated_by_limit: bool = False


# --- raw readers: yield (file, line_or_row_number, dict | Reject) -------------------------------


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    n_lines = n_bad_json = 0
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            n_lines += 1
            if lineno == 1 and raw.startswith(b"PAR1"):
                raise InputError(f"{path}: this is a Parquet file, not JSON Lines")
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                n_bad_json += 1
                if n_bad_json == n_lines and n_lines >= 20:
                    raise InputError(
                        f"{path}: not JSON Lines (the first {n_lines} lines do not parse)"
                    ) from None
                if isinstance(exc, UnicodeDecodeError):
                    yield lineno, f"invalid UTF-8 at byte {exc.start}"
                else:
                    yield lineno, f"malformed JSON: {exc.msg} at column {exc.colno}"
                continue
            if not isinstance(obj, dict):
                yield lineno, f"not a JSON object (got {type(obj).__name__})"
                continue
            yield lineno, obj
    if n_lines and n_bad_json == n_lines:
        raise InputError(f"{path}: not JSON Lines (no line parses as JSON)")


def _iter_table(table: pa.Table) -> Iterator[tuple[int, dict[str, Any] | str]]:
    row = 0
    for batch in table.to_batches(max_chunksize=4096):
        for rec in batch.to_pylist():
            row += 1
            yield row, rec


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a Parquet file ({exc})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for rec in batch.to_pylist():
            row += 1
            yield row, rec


def _load_datasets(cfg: InputConfig, path: str) -> pa.Table:
    import datasets

    try:
        if cfg.format == "hub":
            ds = datasets.load_dataset(path, split=cfg.split)
        else:
            ds = datasets.load_from_disk(path)
            if isinstance(ds, datasets.DatasetDict):
                if cfg.split not in ds:
                    raise InputError(f"{path}: no split {cfg.split!r} (has: {', '.join(ds)})")
                ds = ds[cfg.split]
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"{path}: cannot load as a datasets {'hub name' if cfg.format == 'hub' else 'folder'} ({exc})"
        ) from None
    return ds.data.table if hasattr(ds.data, "table") else ds.with_format("arrow")[:]


def _files_of(cfg: InputConfig) -> list[tuple[str, str]]:
    """[(kind, path)] to read in order."""
    if cfg.path is None:
        raise InputError("no input given")
    if cfg.format == "hub":
        return [("hub", cfg.path)]
    path = Path(cfg.path)
    if not path.exists():
        raise InputError(f"input not found: {path} (for a Hugging Face hub dataset, set input.format: hub)")
    if path.is_dir():
        if (
            cfg.format == "datasets"
            or (path / "dataset_info.json").exists()
            or (path / "dataset_dict.json").exists()
        ):
            return [("datasets", str(path))]
        files = sorted(p for p in path.iterdir() if p.name.endswith((*JSONL_SUFFIXES, ".parquet")))
        if not files:
            raise InputError(f"{path}: no .jsonl or .parquet files in this folder")
        return [(_kind_of(f, cfg), str(f)) for f in files]
    return [(_kind_of(path, cfg), str(path))]


def _kind_of(path: Path, cfg: InputConfig) -> str:
    if cfg.format in ("jsonl", "parquet"):
        return cfg.format
    if path.name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if path.suffix == ".parquet":
        return "parquet"
    raise InputError(f"{path}: unknown input format (use .jsonl, .parquet, or set input.format)")


def iter_raw(cfg: InputConfig) -> Iterator[tuple[str, int, dict[str, Any] | str]]:
    for kind, path in _files_of(cfg):
        if kind == "jsonl":
            it = iter_jsonl(Path(path))
        elif kind == "parquet":
            it = _iter_parquet(Path(path))
        else:
            it = _iter_table(_load_datasets(cfg, path))
        for line, rec in it:
            yield path, line, rec


# --- normalisation -----------------------------------------------------------------------------


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def normalize_row(rec: dict[str, Any], cfg: InputConfig, default_source: str) -> dict[str, Any] | str:
    """A raw record -> a PROMPT_SCHEMA dict, or the reason it is rejected."""
    cols = cfg.columns
    if cols.problem not in rec:
        return f"missing problem field {cols.problem!r}"
    problem = rec[cols.problem]
    if not isinstance(problem, str):
        return f"problem field {cols.problem!r} is not a string"
    if not problem.strip():
        return "empty problem"
    answer = _as_text(rec.get(cols.answer))
    if answer is not None and cfg.answer_format == "gsm8k":
        if "####" not in answer:
            return "gsm8k answer has no '####' final-answer line"
        answer = answer.rsplit("####", 1)[1].strip()
    tests = rec.get(cols.tests)
    if tests is not None and cfg.tests_format == "humaneval":
        entry = rec.get(cols.entry_point)
        if not isinstance(tests, str) or not isinstance(entry, str) or not entry:
            return f"humaneval tests need string columns {cols.tests!r} and {cols.entry_point!r}"
        tests = json.dumps({"code": tests, "entry_point": entry})
    elif isinstance(tests, str):
        try:
            json.loads(tests)
        except json.JSONDecodeError:
            return "tests is not valid JSON"
    elif tests is not None:
        tests = json.dumps(tests, ensure_ascii=False)
    domain = rec.get(cols.domain) or cfg.domain
    if not isinstance(domain, str) or domain.lower() not in DOMAINS:
        return f"unknown domain {domain!r} (known: {', '.join(DOMAINS)})"
    raw_id = rec.get(cols.id)
    return {
        "id": _as_text(raw_id) if raw_id not in (None, "") else prompt_id_for(problem),
        "problem": problem,
        "answer": answer,
        "tests": tests,
        "domain": domain.lower(),
        "source": _as_text(rec.get(cols.source)) or cfg.source or default_source,
    }


def read_prompts(cfg: InputConfig) -> PromptSet:
    """All valid prompts in input order, and a rejection for every other row."""
    columns: dict[str, list[Any]] = {f.name: [] for f in PROMPT_SCHEMA}
    rejects: list[Reject] = []
    first_seen: dict[str, tuple[str, int]] = {}
    rows_read = 0
    truncated = False
    for file, line, rec in iter_raw(cfg):
        if cfg.limit is not None and len(first_seen) >= cfg.limit + cfg.skip:
            truncated = True
            break
        rows_read += 1
        if isinstance(rec, str):
            rejects.append(Reject(file, line, rec))
            continue
        row = normalize_row(rec, cfg, default_source=Path(file).name.split(".")[0])
        if isinstance(row, str):
            rejects.append(Reject(file, line, row, _as_text(rec.get(cfg.columns.id))))
            continue
        if row["id"] in first_seen:
            f0, l0 = first_seen[row["id"]]
            where = f"line {l0}" if f0 == file else f"{f0}:{l0}"
            rejects.append(Reject(file, line, f"duplicate id {row['id']!r} (first at {where})", row["id"]))
            continue
        first_seen[row["id"]] = (file, line)
        for name in columns:
            columns[name].append(row[name])
    table = pa.Table.from_pydict(columns, schema=PROMPT_SCHEMA).slice(cfg.skip)
    return PromptSet(table=table, rejects=rejects, rows_read=rows_read, truncated_by_limit=truncated)
