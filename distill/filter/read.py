"""Reading the filter's inputs: the Parquet fast paths beside `traces.read_trace_file`.

A Parquet file that already is a valid trace file (TRACE_SCHEMA types, every required field set)
and is read without an `input` mapping takes a fast path: the same table as `read_trace_file`
gives, without Python rows. In the first pass this process reads it without its `reasoning`
(`BULK_TEXT`; verification reads it only for the rows that need it, the feature workers read the
texts from the file themselves) and, when its statistics show no missing one, without its
`completion` (`DEFERRED_TEXT`; the feature workers check that none is empty). Anything else goes
through `read_trace_file` (`distill/filter/traces.py`: foreign shapes, column mapping, rejects).

Parquet is read here in batches, in the calling thread (`read_parquet`, `read_present`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill.filter.config import FilterInput
from distill.filter.traces import REQUIRED, TraceRead, read_trace_file
from distill.schema import TRACE_SCHEMA, conform

BULK_TEXT = "reasoning"  # not read by this process in the first pass of a Parquet input
# nor, when no row lacks a token count, this one: the feature workers read it and check that no
# row's is empty (a required field: such a file is read again the strict way, `EmptyRequired`)
DEFERRED_TEXT = "completion"
READ_BATCH_ROWS = 256  # rows per Arrow batch when reading an input: 256 traces of 32k tokens ~ 32 MiB


def text_free(path: Path) -> bool:
    """Whether the work shard of this input leaves the texts out (read again in pass 3)."""
    return path.suffix == ".parquet"


def read_input(path: Path, spec: FilterInput | None = None) -> tuple[pa.Table, list[dict]]:
    """`read_trace_file`, with a fast path for a Parquet file that already is a valid trace file
    (TRACE_SCHEMA types, every required field set) read as it is (no `input` mapping): the same
    table, without Python rows."""
    spec = spec or FilterInput()
    if path.suffix == ".parquet" and not spec.mapping():
        table = _valid_trace_parquet(path)
        if table is not None:
            return table, []
    read = read_trace_file(path, spec)
    return read.table, read.rejects


def read_first_pass(path: Path, spec: FilterInput | None = None) -> tuple[TraceRead, bool]:
    """What the first pass of this process needs of an input file: (what was read, slim). A valid
    Parquet trace file is read without its `reasoning` (`slim`: the feature workers read the texts
    from the file themselves, and verification reads `reasoning` only where it needs it). Any other
    file, or any file under an `input` mapping, goes through `read_trace_file`."""
    spec = spec or FilterInput()
    if path.suffix == ".parquet" and not spec.mapping():
        defer = (DEFERRED_TEXT,) if _no_nulls(path, (DEFERRED_TEXT, "completion_tokens")) else ()
        table = _valid_trace_parquet(path, skip=(BULK_TEXT,), defer=defer)
        if table is not None:
            return TraceRead(table, []), True
    return read_trace_file(path, spec), False


def _no_nulls(path: Path, columns: tuple[str, ...]) -> bool:
    """Whether the Parquet statistics of every row group show no null in these columns."""
    try:
        meta = pq.ParquetFile(path).metadata
        names = [meta.schema.column(j).path for j in range(meta.num_columns)]
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            for name in columns:
                stats = group.column(names.index(name)).statistics
                if stats is None or not stats.has_null_count or stats.null_count:
                    return False
    except (pa.ArrowException, OSError, ValueError):
        return False
    return True


def _valid_trace_parquet(
    path: Path, skip: tuple[str, ...] = (), defer: tuple[str, ...] = ()
) -> pa.Table | None:
    """The conformed table (without the nullable columns in `skip`), or None when
    `read_trace_file` has something to say (or reject). `defer`: required columns left out too,
    whose statistics show no null; the caller checks that none is empty (`EmptyRequired`)."""
    try:
        schema = pq.ParquetFile(path).schema_arrow
    except (pa.ArrowInvalid, OSError):
        return None
    names = schema.names
    if len(set(names)) != len(names):
        return None
    for f in TRACE_SCHEMA:
        if f.name not in names:
            if not f.nullable:
                return None
        elif schema.field(f.name).type != f.type:
            return None
    wanted = [f for f in TRACE_SCHEMA if (f.name not in skip or not f.nullable) and f.name not in defer]
    try:
        table = read_parquet(path, [f.name for f in wanted if f.name in names])
    except (pa.ArrowInvalid, OSError):
        return None
    for f in wanted:
        if not f.nullable and table.column(f.name).null_count:
            return None
    for name in REQUIRED:  # a row without one is a reject: read_trace_file records it
        if name in defer:
            continue
        column = table.column(name)
        if column.null_count or pc.any(pc.equal(pc.binary_length(column), 0)).as_py():
            return None
    return conform(table, pa.schema(wanted))


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file, in this thread: pyarrow's thread pool costs CPU here, not time (the other
    core is busy with workers), and `pq.read_table`'s dataset layer imports pandas."""
    return _read_file(pq.ParquetFile(path), columns)


def read_present(path: Path, columns: list[str] | tuple[str, ...]) -> pa.Table:
    """Those of `columns` that the Parquet file has (one open, in this thread)."""
    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    return _read_file(file, [c for c in columns if c in names])


def _read_file(file: pq.ParquetFile, columns: list[str] | None) -> pa.Table:
    """In batches of READ_BATCH_ROWS rows: a text column of a whole shard (40 MB and more) would be
    one buffer above glibc's largest mmap threshold, mapped and faulted in afresh on every read
    (`distill/memory.py`); batch-sized buffers are reused from the heap (kernel time: -75%)."""
    batches = file.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns, use_threads=False)
    schema = (
        file.schema_arrow if columns is None else pa.schema([file.schema_arrow.field(c) for c in columns])
    )
    return pa.Table.from_batches(list(batches), schema=schema)
