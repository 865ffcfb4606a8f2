"""Mixing filtered sets by ratio into one shuffled SFT set (R1: 600k reasoning + 200k non-reasoning).

A `mix` recipe section names sources (`sft/` folders or Parquet files with a `messages` column)
and how many rows to take from each (`rows`, or `weight` with a `total`). Rows are drawn without
replacement (with `repeat: true`, a source smaller than its share is cycled), assigned to output
shards at random, and each output shard is shuffled: memory holds one input file and one output
shard at a time. The same recipe gives the same output.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from distill.config import StrictModel
from distill.errors import UserError
from distill.filter.card import CardConfig, write_mix_card
from distill.provenance import atomic_write_text, command_line, git_commit, sha256_file
from distill.shards import MANIFEST, ShardStore, merge_manifests


class MixSource(StrictModel):
    path: str = Field(description="An sft/ folder (or a filter output folder), or a Parquet file.")
    rows: int | None = Field(None, ge=0, description="Rows to take from this source.")
    weight: float | None = Field(None, gt=0, description="Share of `total` (with the other weights).")
    repeat: bool = Field(False, description="Cycle the source if it has fewer rows than asked.")


class MixConfig(StrictModel):
    sources: list[MixSource] = Field(default_factory=list)
    total: int | None = Field(None, ge=1, description="Total rows when sources give weights.")
    output: str | None = None
    seed: int = 0
    shard_rows: int = Field(20000, ge=1, description="Rows per output shard.")
    card: CardConfig = Field(  # not in the identity (exclude): a new license rewrites no row
        default_factory=CardConfig,
        exclude=True,
        description="The dataset card (README.md): license, pretty_name.",
    )

    @model_validator(mode="after")
    def _counts(self) -> MixConfig:
        weights = [s.weight is not None for s in self.sources]
        if any(weights) and self.total is None:
            raise ValueError("sources with a weight need `total`")
        if any((s.rows is None) == (s.weight is None) for s in self.sources):
            raise ValueError("each source needs exactly one of `rows` or `weight`")
        return self


def source_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    for folder in (p / "sft" / "data", p / "data", p):
        files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        if files:
            return files
    raise UserError(f"mix source {path}: no Parquet files found")


def planned_counts(cfg: MixConfig, available: list[int]) -> list[int]:
    weights = [s.weight for s in cfg.sources if s.weight is not None]
    counts = []
    for s, have in zip(cfg.sources, available, strict=True):
        want = s.rows if s.rows is not None else round(cfg.total * s.weight / sum(weights))
        if want > have and not s.repeat:
            raise UserError(
                f"mix source {s.path} has {have} rows, {want} asked (set repeat: true to cycle it)"
            )
        counts.append(want)
    return counts


def run_mix(cfg: MixConfig, log: Callable[[str], None] = print) -> dict:
    if not cfg.sources or not cfg.output:
        raise UserError("mix needs sources and an output folder")
    files = [source_files(s.path) for s in cfg.sources]
    sizes = [[pq.ParquetFile(f).metadata.num_rows for f in fs] for fs in files]
    counts = planned_counts(cfg, [sum(s) for s in sizes])
    total = sum(counts)
    n_out = max(1, -(-total // cfg.shard_rows))
    out = Path(cfg.output)
    identity = {
        "stage": "mix",
        "config": cfg.model_dump(mode="json", exclude={"output"}),
        "inputs": [[(f.name, f.stat().st_size) for f in fs] for fs in files],
    }
    store = ShardStore(out, identity, n_out)
    store.open()
    rng = np.random.default_rng(cfg.seed)
    parts = out / ".parts"
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir()
    schema = None
    for si, (fs, szs, want) in enumerate(zip(files, sizes, counts, strict=True)):
        have = sum(szs)
        picks = (
            np.concatenate([rng.permutation(have) for _ in range(-(-want // have))])[:want] if have else []
        )
        picks = np.sort(np.asarray(picks, dtype=np.int64))
        dest = rng.integers(0, n_out, size=len(picks))
        offset = 0
        for fi, (f, size) in enumerate(zip(fs, szs, strict=True)):
            mask = (picks >= offset) & (picks < offset + size)
            if mask.any():
                table = pq.read_table(f)
                if "messages" not in table.column_names:
                    raise UserError(f"{f}: no `messages` column (not an SFT set)")
                schema = schema or table.schema
                table = table.select(schema.names).cast(schema)
                rows = table.take(pa.array(picks[mask] - offset))
                for k in np.unique(dest[mask]):
                    pq.write_table(
                        rows.filter(pa.array(dest[mask] == k)), parts / f"{k:05d}-{si:03d}-{fi:05d}.parquet"
                    )
            offset += size
    for k in range(n_out):
        if store.is_sealed(k):
            continue
        pieces = [pq.read_table(p) for p in sorted(parts.glob(f"{k:05d}-*.parquet"))]
        table = pa.concat_tables(pieces) if pieces else schema.empty_table()
        table = table.take(pa.array(np.random.default_rng([cfg.seed, k]).permutation(table.num_rows)))
        store.seal(k, table, {})
    shutil.rmtree(parts, ignore_errors=True)
    sources = [
        {"path": s.path, "rows": c, "available": sum(sz), "manifest_sha256": _manifest_sha(s.path)}
        for s, c, sz in zip(cfg.sources, counts, sizes, strict=True)
    ]
    doc = merge_manifests(out, {"sources": sources, "git_commit": git_commit(), "command": command_line()})
    write_mix_card(out, cfg.card, log)
    atomic_write_text(out / "mix.json", json.dumps({"rows": total, "sources": sources}, indent=1))
    log(f"mixed {total} rows from {len(sources)} sources into {n_out} shards: {out}")
    return doc or {}


def _manifest_sha(path: str) -> str | None:
    p = Path(path)
    for m in (p / MANIFEST, p.parent / MANIFEST):
        if m.is_file():
            return sha256_file(m)
    return None
