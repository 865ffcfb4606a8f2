"""The per-shard journal: finished requests of a shard that is not sealed yet, so that a killed
or preempted run loses only the requests that were in flight.

A shard is the unit of output, and with long samples it is hours of accelerator time. Every
finished request's samples are appended to its shard's journal, in small batches (`flush`): each
batch is one Arrow IPC file, written under a temporary name, fsynced and renamed into place, so
a segment on disk is always whole. A segment carries the prompt indices it completes (a prompt
rejected for good completes with no rows) and the fingerprint of the folder's settings; one with
another fingerprint, or one that does not read back, is ignored.

On resume the journaled prompts are not sent again; the shard seals from the journal plus the
new results, with the same sample ids (ids depend on the prompt, the teacher, the sampling and
the sample's index, never on the run), and its journal is deleted once the shard is sealed.

    OUT/journal/shard-00003-of-00017/seg-<pid>-<n>.arrow
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from distill.provenance import fsync_dir
from distill.schema import TRACE_SCHEMA, to_table

JOURNAL_DIR = "journal"
_META = b"distill.journal"


@dataclass
class Journaled:
    """What a shard's journal holds: prompt index -> its rows, and the prompts rejected for good."""

    rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    rejected: dict[int, dict[str, Any]] = field(default_factory=dict)
    segments: int = 0
    unreadable: int = 0


class Journal:
    """Appends finished requests per shard; `flush` writes what is pending, one segment per shard.

    `flush_seconds` bounds what a SIGKILL can lose (0 flushes after every request);
    `flush_requests` bounds what is held in memory between flushes.
    """

    def __init__(
        self,
        root: Path,
        num_shards: int,
        fingerprint: str,
        flush_seconds: float = 2.0,
        flush_requests: int = 256,
    ):
        self.dir = Path(root) / JOURNAL_DIR
        self.num_shards = num_shards
        self.fingerprint = fingerprint
        self.flush_seconds = flush_seconds
        self.flush_requests = flush_requests
        self._pending: dict[int, list[tuple[int, list[dict[str, Any]], dict[str, Any] | None]]] = {}
        self._count = 0
        self._last = time.monotonic()
        self._serial = 0

    def shard_dir(self, index: int) -> Path:
        return self.dir / f"shard-{index:05d}-of-{self.num_shards:05d}"

    # --- reading (on resume) ---------------------------------------------------------------------

    def load(self, index: int) -> Journaled:
        """Everything the journal holds for shard `index` (whole segments with this fingerprint)."""
        got = Journaled()
        folder = self.shard_dir(index)
        if not folder.is_dir():
            return got
        for path in sorted(folder.glob("seg-*.arrow")):
            try:
                with pa.memory_map(str(path)) as source:
                    table = pa.ipc.open_file(source).read_all()
                meta = json.loads((table.schema.metadata or {})[_META])
            except (OSError, pa.ArrowInvalid, KeyError, ValueError):
                got.unreadable += 1
                continue
            if meta.get("fingerprint") != self.fingerprint or meta.get("shard") != index:
                got.unreadable += 1
                continue
            got.segments += 1
            rows = table.to_pylist()
            for i, count in meta["prompts"]:  # a prompt may have several entries: adaptive rounds
                got.rows.setdefault(i, []).extend(rows[:count])
                rows = rows[count:]
            for i, reject in meta.get("rejected", []):
                got.rows[i] = []
                got.rejected[i] = reject
        for i, rows in got.rows.items():  # one sample once, in sample order, whatever the segments
            unique = {r["id"]: r for r in rows}
            got.rows[i] = sorted(unique.values(), key=lambda r: r["sample_index"])
        return got

    # --- writing ---------------------------------------------------------------------------------

    def add(self, index: int, prompt: int, rows: list[dict[str, Any]], reject: dict[str, Any] | None = None):
        """Record a finished request (its rows, or the reason it was rejected for good)."""
        self._pending.setdefault(index, []).append((prompt, rows, reject))
        self._count += 1

    def due(self) -> bool:
        return bool(self._count) and (
            self._count >= self.flush_requests or time.monotonic() - self._last >= self.flush_seconds
        )

    def flush(self, only: int | None = None) -> int:
        """Write the pending requests (of shard `only`, or of all), one segment per shard; returns
        how many requests were written."""
        shards = [only] if only is not None else sorted(self._pending)
        written = 0
        for index in shards:
            items = self._pending.get(index)
            if not items:
                continue
            self._write_segment(index, items)  # interrupted here, the items stay pending
            del self._pending[index]
            written += len(items)
        self._count -= written
        if only is None:
            self._last = time.monotonic()
        return written

    def forget(self, index: int) -> None:
        """Drop what is pending for a shard (its rows are being sealed)."""
        self._count -= len(self._pending.pop(index, []))

    def discard(self, index: int) -> None:
        """Delete a sealed shard's journal."""
        shutil.rmtree(self.shard_dir(index), ignore_errors=True)

    def remove_if_empty(self) -> None:
        with contextlib.suppress(OSError):
            self.dir.rmdir()

    def _write_segment(self, index: int, items) -> None:
        folder = self.shard_dir(index)
        folder.mkdir(parents=True, exist_ok=True)
        rows = [r for _, rs, reject in items if reject is None for r in rs]
        meta = {
            "fingerprint": self.fingerprint,
            "shard": index,
            "prompts": [[i, len(rs)] for i, rs, reject in items if reject is None],
            "rejected": [[i, reject] for i, _, reject in items if reject is not None],
        }
        table = to_table(rows, TRACE_SCHEMA)
        table = table.replace_schema_metadata({_META: json.dumps(meta).encode()})
        self._serial += 1
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{self._serial:06d}.arrow"
        final = folder / name
        tmp = folder / f".{name}.tmp"
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(folder)


def prompts_in_segment(path: Path) -> set[int]:
    """The prompt indices a journal segment finishes (empty when it does not read back)."""
    try:
        with pa.memory_map(str(path)) as source:
            meta = json.loads((pa.ipc.open_file(source).schema.metadata or {})[_META])
    except (OSError, pa.ArrowInvalid, KeyError, ValueError):
        return set()
    return {i for i, _ in meta.get("prompts", [])} | {i for i, _ in meta.get("rejected", [])}
