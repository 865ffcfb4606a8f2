"""Helpers of the generate tests: what is on disk and which processes are alive."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def shard_files(out: Path) -> dict[str, tuple[int, int]]:
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted((out / "data").glob("train-*.parquet"))
    }


def sealed_in_manifest(out: Path) -> list[str]:
    names = []
    for f in (out / "manifests").glob("worker-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            names += list(json.loads(f.read_text())["shards"])
    return names


def journaled(out: Path) -> set[tuple[int, int]]:
    """(shard, prompt index) of every finished request in the journal, read with pyarrow alone."""
    got = set()
    for seg in (out / "journal").glob("shard-*/seg-*.arrow"):
        with contextlib.suppress(OSError, ValueError, KeyError, pa.ArrowInvalid):
            meta = json.loads(pa.ipc.open_file(pa.memory_map(str(seg))).schema.metadata[b"distill.journal"])
            got |= {(meta["shard"], i) for i, _ in meta["prompts"]}
    return got


def session_processes(sid: int) -> list[str]:
    """Command names of the live processes in session `sid` (a process started with start_new_session)."""
    names = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            text = stat.read_text()
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                names.append(text[text.index("(") + 1 : text.rindex(")")])
    return names


def read_ids(out: Path) -> list[str]:
    return [
        i
        for p in sorted((out / "data").glob("train-*.parquet"))
        for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()
    ]
