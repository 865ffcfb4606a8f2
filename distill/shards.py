"""Crash-safe sharded Parquet output with manifests: the unit of resume is the shard.

A shard (`data/train-KKKKK-of-NNNNN.parquet`) is written to a temporary name, fsynced, renamed into place, and only then recorded in
its worker's manifest (also written atomically). A shard counts only if a manifest names it and
its file has the recorded size and a footer that reads back with the recorded row count; anything
else is redone. Each of W workers keeps its own manifest under `manifests/`, so workers never
write the same file; `merge` unions them into `manifest.json` once every shard is sealed, with
no coordination (any worker, or `distill manifest DIR`, can do it; the result is the same).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import UserError
from distill.provenance import atomic_write_text, fsync_dir, git_commit, sha256_file, utc_now

MANIFEST = "manifest.json"
WORKER_DIR = "manifests"


DATA_DIR = "data"


def shard_name(index: int, total: int, split: str = "train") -> str:
    """The Hugging Face hub layout (`data/train-00003-of-00017.parquet`): `datasets.load_dataset`
    on the output folder reads the shards and nothing else."""
    return f"{DATA_DIR}/{split}-{index:05d}-of-{total:05d}.parquet"


def data_files(
    path: str | Path,
    suffixes: tuple[str, ...] = (".parquet",),
    *,
    what: str = "input",
    allow_empty: bool = False,
    complete: bool = False,
) -> list[Path]:
    """The data files at `path`, sorted by name. The one place that knows the output layout:

        a file                  -> the file itself (whatever its name)
        a stage's output folder -> its shards, `data/*` (generate, mix, a filter's `sft/`, ...)
        a filter's output folder -> its kept rows, `sft/data/*`
        any other folder        -> the files in it

    In a folder, only files whose names end with one of `suffixes` count. A missing path, or a
    folder with no such file (unless `allow_empty`), is a UserError; `what` names the path in it.
    With `complete`, a stage folder whose workers have not finished (worker manifests, no
    manifest.json) is refused too.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if path.is_file():
        return [path]
    if complete and (path / WORKER_DIR).is_dir() and not (path / MANIFEST).exists():
        raise UserError(f"{path}: this output folder is not complete (no {MANIFEST}): finish its stage first")
    folder = path
    for inner in (path / DATA_DIR, path / "sft" / DATA_DIR):
        if inner.is_dir():
            folder = inner
            break
    files = sorted(p for p in folder.iterdir() if p.name.endswith(suffixes) and p.is_file())
    if not files and not allow_empty:
        listed = ", ".join(suffixes[:-1]) + (" or " if len(suffixes) > 1 else "") + suffixes[-1]
        raise UserError(f"{folder}: no {listed} files in this folder")
    return files


def shard_ok(path: Path, record: dict[str, Any]) -> bool:
    """The file exists, has the recorded size, and its footer reads back with the recorded rows."""
    try:
        if path.stat().st_size != record["bytes"]:
            return False
        return pq.ParquetFile(path).metadata.num_rows == record["rows"]
    except (OSError, pa.ArrowException, KeyError):
        return False


def _index_of(name: str) -> int | None:
    """The shard index in a (temporary) shard file name, `.train-00003-of-00017.parquet.tmp-123`."""
    head = name.lstrip(".").split("-of-")[0]
    digits = head.rsplit("-", 1)[-1]
    return int(digits) if digits.isdigit() else None


LONG_VALUE_BYTES = 256  # string columns with longer values on average skip dictionary encoding


def _dictionary_columns(table: pa.Table) -> list[str]:
    """Columns worth dictionary encoding: not long texts (ids, reasons, short labels). A dictionary
    attempt on long, unique texts only costs time before Parquet falls back to plain encoding."""
    names = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_nested(kind):
            continue
        if pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_string(kind):
            rows = len(column) - column.null_count
            if rows and column.nbytes / rows > LONG_VALUE_BYTES:
                continue
        names.append(name)
    return names


def write_shard(
    root: Path, index: int, num_shards: int, table: pa.Table, stats: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write shard `index` of a store at `root`: temporary name, fsync, rename. Returns its
    manifest record; the shard counts only once a store `register`s it. Safe in any process."""
    final = Path(root) / shard_name(index, num_shards)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd", use_dictionary=_dictionary_columns(table))
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    record = {
        "index": index,
        "rows": table.num_rows,
        "bytes": tmp.stat().st_size,
        "sha256": sha256_file(tmp),
        "sealed_at": utc_now(),
        **(stats or {}),
    }
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return record


@dataclass
class ShardStore:
    """One worker's view of a sharded output folder."""

    root: Path
    identity: dict[str, Any]  # what must not change between runs into this folder
    num_shards: int
    worker_index: int = 0
    num_workers: int = 1
    info: dict[str, Any] | None = None  # recorded in the manifest (config, versions, ...)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.worker_file = (
            self.root / WORKER_DIR / f"worker-{self.worker_index:05d}-of-{self.num_workers:05d}.json"
        )
        self.shards: dict[str, dict[str, Any]] = {}

    # --- opening -------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the folder, refuse a different identity, load what earlier runs sealed."""
        try:
            (self.root / WORKER_DIR).mkdir(parents=True, exist_ok=True)
            (self.root / DATA_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission, a read-only disk
            raise UserError(f"cannot create the output folder {self.root}: {exc.strerror}") from None
        for path, manifest in self._all_manifests():
            if manifest.get("identity") != self.identity:
                raise UserError(self._mismatch(path, manifest.get("identity") or {}))
        for _, manifest in self._all_manifests():
            for name, rec in (manifest.get("shards") or {}).items():
                if name not in self.shards and shard_ok(self.root / name, rec):
                    self.shards[name] = rec
        for tmp in (self.root / DATA_DIR).glob(".*.tmp-*"):
            # a partial file of one of this worker's shards: left by a run that died mid-write
            # (other workers' partial files may be shards they are writing right now)
            index = _index_of(tmp.name)
            if index is not None and index % self.num_workers == self.worker_index:
                tmp.unlink(missing_ok=True)
        self._save()

    def _all_manifests(self) -> list[tuple[Path, dict[str, Any]]]:
        paths = sorted((self.root / WORKER_DIR).glob("worker-*.json"))
        if (self.root / MANIFEST).exists():
            paths.append(self.root / MANIFEST)
        out = []
        for path in paths:
            try:
                out.append((path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, json.JSONDecodeError):
                continue  # an unreadable manifest seals nothing
        return out

    def _mismatch(self, path: Path, old: dict[str, Any]) -> str:
        diffs = [k for k in sorted(set(old) | set(self.identity)) if old.get(k) != self.identity.get(k)]
        detail = "; ".join(f"{k}: was {old.get(k)!r}, now {self.identity.get(k)!r}" for k in diffs[:3])
        return (
            f"{self.root} already holds output made with different settings ({detail}). "
            "Mixing them would corrupt the data set: use a new --output folder, or restore the settings."
        )

    # --- shards --------------------------------------------------------------------------------

    def is_sealed(self, index: int) -> bool:
        name = shard_name(index, self.num_shards)
        rec = self.shards.get(name)
        return rec is not None and shard_ok(self.root / name, rec)

    def seal(self, index: int, table: pa.Table, stats: dict[str, Any] | None = None) -> dict[str, Any]:
        record = write_shard(self.root, index, self.num_shards, table, stats)
        self.register(record)
        return record

    def register(self, record: dict[str, Any]) -> None:
        """Record a shard that `write_shard` put in place (in this process or another)."""
        self.shards[shard_name(record["index"], self.num_shards)] = record
        self._save()

    def _save(self) -> None:
        mine = {n: r for n, r in self.shards.items() if r["index"] % self.num_workers == self.worker_index}
        doc = {
            "identity": self.identity,
            "worker_index": self.worker_index,
            "num_workers": self.num_workers,
            "num_shards": self.num_shards,
            "shards": dict(sorted(mine.items())),
            "info": self.info or {},
        }
        atomic_write_text(self.worker_file, json.dumps(doc, indent=1, ensure_ascii=False))

    # --- merging -------------------------------------------------------------------------------

    def merge(self, extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Write manifest.json if every shard is sealed; return it (None if some are missing)."""
        return merge_manifests(self.root, extra)


def merge_manifests(root: Path, extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    root = Path(root)
    workers = []
    for path in sorted((root / WORKER_DIR).glob("worker-*.json")):
        try:
            workers.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue
    if not workers:
        raise UserError(f"{root}: no manifests found (is this a distill output folder?)")
    identity = workers[0]["identity"]
    num_shards = workers[0]["num_shards"]
    shards: dict[str, dict[str, Any]] = {}
    for doc in workers:
        if doc["identity"] != identity:
            raise UserError(f"{root}: worker manifests disagree on settings; refusing to merge")
        for name, rec in doc["shards"].items():
            if name not in shards and shard_ok(root / name, rec):
                shards[name] = rec
    if len(shards) < num_shards:
        return None
    totals: dict[str, Any] = {"shards": num_shards}
    for rec in shards.values():
        for key, value in rec.items():
            if isinstance(value, dict):  # a stage's own counters (e.g. generate's `adaptive`)
                sums = totals.setdefault(key, {})
                for k2, v2 in value.items():
                    if isinstance(v2, (int, float)) and not isinstance(v2, bool):
                        sums[k2] = sums.get(k2, 0) + v2
                continue
            if key in ("index", "bytes", "sha256", "sealed_at") or not isinstance(value, (int, float)):
                continue
            totals[key] = totals.get(key, 0) + value
    doc = {
        "complete": True,
        "identity": identity,
        "totals": totals,
        "shards": dict(sorted(shards.items())),
        "info": workers[0].get("info", {}),
        "git_commit": git_commit(),
        "merged_at": utc_now(),
        **(extra or {}),
    }
    atomic_write_text(root / MANIFEST, json.dumps(doc, indent=1, ensure_ascii=False))
    return doc
