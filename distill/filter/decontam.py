"""Benchmark decontamination: drop prompts that share a word n-gram with a benchmark question.

open-r1 drops prompts sharing any word 8-gram with AIME, MATH-500, GPQA and LiveCodeBench; the
default n is 8 (Light-R1 uses 32). Normalisation on both sides (`distill.text.normalize_words`):
Unicode NFKC, lowercase, words = runs of letters and digits, so punctuation, curly vs straight quotes and spacing do not
matter. The benchmark side is one dict n-gram (its words joined by spaces) -> (file, row) of its
first occurrence: benchmarks are small (GSM8K test: 53k 8-grams, ~5 MB), and plain strings,
unlike Python's salted int hashes, stay valid when the index is pickled to worker processes. A
prompt costs one regex pass and one dict look-up per n-gram (~20 us of CPU for a 50-word
problem). Benchmark questions shorter than n words have no n-gram and can never match (as in
open-r1); use a smaller n for very short benchmarks. A drop reports the first shared n-gram and
the benchmark file and row (its id column, else its index) where that n-gram first occurs.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from distill.config import StrictModel
from distill.errors import UserError
from distill.text import normalize_words, word_ngrams

QUESTION_COLUMNS = ("problem", "question", "prompt")
ID_COLUMNS = ("id", "task_id", "problem_id", "unique_id", "question_id")


class DecontamConfig(StrictModel):
    enabled: bool = Field(True, description="Drop prompts that share an n-gram with a benchmark question.")
    benchmarks: list[str] = Field(
        default_factory=list, description="Benchmark files (JSONL, JSONL.gz, Parquet)."
    )
    ngram: int = Field(8, ge=1, le=64, description="Words per n-gram.")
    column: str | None = Field(
        None, description=f"Question column; default: the first of {QUESTION_COLUMNS}."
    )
    field: str = Field(
        "problem", description="Row field checked (the bare problem, not the templated prompt)."
    )


@dataclass(frozen=True, slots=True)
class Match:
    benchmark: str  # file name
    row: str  # the row's id column, else its 0-based index
    ngram: str  # the shared words

    def reason(self) -> str:
        return f"contaminated: shares {self.ngram!r} with {self.benchmark} row {self.row}"


def read_questions(path: str | Path, column: str | None = None) -> Iterator[tuple[str, str]]:
    """(row id, question) of a JSONL / JSONL.gz / Parquet benchmark file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"benchmark file not found: {path}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
    else:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    if not records:
        return
    keys = records[0].keys()
    col = column or next((c for c in QUESTION_COLUMNS if c in keys), None)
    if col is None or col not in keys:
        raise UserError(
            f"{path}: no question column (looked for {column or QUESTION_COLUMNS}; has {list(keys)})"
        )
    id_col = next((c for c in ID_COLUMNS if c in keys), None)
    for i, rec in enumerate(records):
        yield (str(rec[id_col]) if id_col else str(i)), rec.get(col) or ""


class Decontaminator:
    """`check(text)` -> the first `Match` of `text` with any benchmark question, or None."""

    def __init__(
        self, benchmarks: Sequence[str | Path] = (), ngram: int = 8, column: str | None = None
    ) -> None:
        self.ngram = ngram
        self.files = [Path(p).name for p in benchmarks]
        self.rows: list[tuple[int, str]] = []  # (file index, row id)
        self._index: dict[str, int] = {}  # n-gram -> position in self.rows
        for f, path in enumerate(benchmarks):
            for row_id, question in read_questions(path, column):
                grams = word_ngrams(normalize_words(question), ngram)
                if grams:
                    self.rows.append((f, row_id))
                    for gram in grams:
                        self._index.setdefault(gram, len(self.rows) - 1)

    @classmethod
    def from_config(cls, cfg: DecontamConfig) -> Decontaminator:
        return cls(cfg.benchmarks, cfg.ngram, cfg.column)

    def __len__(self) -> int:
        """Benchmark questions indexed."""
        return len(self.rows)

    def check(self, text: str) -> Match | None:
        index = self._index
        for gram in word_ngrams(normalize_words(text), self.ngram) if index else ():
            if gram in index:
                f, row_id = self.rows[index[gram]]
                return Match(self.files[f], row_id, gram)
        return None

    def reason(self, text: str) -> str | None:
        """The drop reason for `text` ("contaminated: ..."), or None when clean."""
        match = self.check(text)
        return match.reason() if match else None


class PromptContamination:
    """Each row's contamination reason, by its prompt: a prompt's reason is that of its first row's
    text in a batch, and each distinct text is checked once for the whole run (samples of one
    prompt spread over many files are checked once). The index is built on first use."""

    CACHE_LIMIT = 100_000  # reasons remembered, by checked text

    def __init__(self, cfg: DecontamConfig) -> None:
        self.cfg = cfg
        self._index: Decontaminator | None = None
        self._cache: dict[str, str | None] = {}

    def reasons(self, rows: list[dict]) -> list[str | None]:
        cfg = self.cfg
        if not rows or not cfg.enabled or not cfg.benchmarks:
            return [None] * len(rows)
        if self._index is None:
            self._index = Decontaminator.from_config(cfg)
        first: dict[str, str] = {}  # prompt id -> the text of its first row here
        for row in rows:
            if row["prompt_id"] not in first:
                first[row["prompt_id"]] = row.get(cfg.field) or ""
        texts = list(dict.fromkeys(first.values()))
        new = [t for t in texts if t not in self._cache]
        if len(self._cache) + len(new) > self.CACHE_LIMIT:  # forget the others: check all of these
            self._cache.clear()
            new = texts
        for text in new:
            self._cache[text] = self._index.reason(text)
        return [self._cache[first[row["prompt_id"]]] for row in rows]
