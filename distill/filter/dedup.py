"""Exact and near-duplicate removal of traces: normalised-text digests, then MinHash LSH.

Rows arrive ordered by preference (the plan sorts them: passing first, then shortest, then by
id); the first row of a duplicate cluster survives, every later one is dropped
with the key of the row it matched. Only survivors are indexed, so a row is compared with kept
rows only. The order alone decides, so the result is deterministic.

Exact: lowercase, collapse runs of ASCII whitespace, strip the ends, then the first 16 bytes of its SHA-256.
Punctuation is kept: in math, `a+b` and `a-b` are different reasoning.

Near: word 5-gram shingles -> 128 MinHash values -> datasketch `MinHashLSH` with 16 bands x 8
rows -> each candidate is confirmed when
its estimated Jaccard (share of equal MinHash values) is >= `threshold` (0.75). Why these numbers: with 128 values the estimate has a standard
deviation of about 0.03 near J = 0.85, so confirming at 0.8 would miss about 6% of pairs at
J = 0.85; at 0.75 it misses < 0.1%, and pairs at J <= 0.6 pass it with p < 0.05%. 16 x 8 (all
128 values, as datatrove's 14 x 8) makes a pair at J = 0.85 a candidate with p = 0.994, at
0.75 with p = 0.82, at 0.3 with p = 0.001. (0.75 rather than 0.8: 128 values cannot separate
0.8 from 0.85.) Measured by `benchmarks/dedup_quality.py` on 20,000 traces of 8-30 KB: recall
0.995 on 2,000 planted pairs at J 0.83-0.87, no false positive among 16,000 distinct traces,
none of 1,000 related pairs at J ~0.5 merged.

Speed: shingles are word n-gram hashes of `distill/text.py` (one pass over the UTF-8 bytes), and
each permutation's minimum is taken over all shingles in a numba-compiled loop
(`distill/kernels.py`; the numpy code here computes the same values where numba is unavailable,
or with `DISTILL_NUMBA=0`). The values equal datasketch's own `affine32` scheme fed the same
32-bit shingle hashes (`MinHash(hashfunc=lambda h: h).update_batch(shingle_hashes(text))`), so
the sketches are real datasketch sketches. `minhash_signatures` never imports datasketch, cheap
to call in worker processes: ~0.07 ms per 19 KB trace (numpy: ~0.2 ms; datasketch's
`update_batch` with SHA1 and Python shingles: ~2.8 ms).

The filter dedups in its plan (`distill/filter/plan.py`: `make_plan`), over the digests and
signatures its first pass computed (`distill/filter/features.py`); `plan_of_rows` there runs the
same path on rows held in memory.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Iterable, Sequence
from functools import lru_cache, partial
from types import ModuleType
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from distill.config import StrictModel
from distill.kernels import minhash_kernel
from distill.text import NGRAM_MULT, U64, fmix64, normalized_bytes, shingle_hashes

_EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's value of an empty MinHash
_BLOCK = 8192  # shingles per block (x _PERM_BLOCK permutations x 4 bytes = 1 MiB, cache sized)
_PERM_BLOCK = 32  # permutations per block


class DedupConfig(StrictModel):
    exact: bool = Field(True, description="Drop rows whose normalised text equals a kept row's.")
    near: bool = Field(True, description="Drop rows whose MinHash Jaccard to a kept row is >= threshold.")
    field: Literal["reasoning", "completion", "content"] = Field("reasoning", description="Text compared.")
    prompts: bool = Field(
        False, description="Also near-dedup problems: a duplicate prompt loses all samples."
    )
    scope: Literal["global", "prompt"] = Field(
        "global", description="global: across all prompts; prompt: only among one prompt's samples."
    )
    ngram: int = Field(5, ge=1, le=32, description="Words per shingle.")
    num_perm: int = Field(128, ge=2, description="MinHash permutations.")
    bands: int = Field(16, ge=2, description="LSH bands.")
    rows: int = Field(8, ge=1, description="MinHash values per LSH band.")
    threshold: float = Field(0.75, gt=0, le=1, description="Estimated Jaccard that confirms a candidate.")
    seed: int = Field(1, description="Permutation seed (datasketch's `seed`).")

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupConfig:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


def _fmix32(h: np.ndarray) -> np.ndarray:  # datasketch's affine32 pre-mix (MurmurHash3 finaliser)
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


@lru_cache(maxsize=8)
def permutations(num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """datasketch's affine32 permutation parameters `[a, b]` (a odd), generated the same way."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.array([a, b])


@lru_cache(maxsize=8)
def _block_buffer(rows: int) -> np.ndarray:
    # Reused scratch space: a fresh array per call costs page faults (glibc mmaps it).
    return np.empty((rows, _BLOCK), dtype=np.uint32)


def signature_of_hashes(hashes: np.ndarray, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """MinHash values (uint32, affine32 scheme) of a set given as 32-bit hashes."""
    a, b = permutations(num_perm, seed)
    out = np.full(num_perm, _EMPTY, dtype=np.uint32)
    if hashes.size == 0:
        return out
    mixed = _fmix32(hashes.astype(np.uint32, copy=False))
    kernel = minhash_kernel()
    if kernel is not None:  # the same values, compiled (`distill/kernels.py`)
        kernel(mixed, a, b, out)
    else:
        _permuted_minima_numpy(mixed, a, b, out)
    return out


def _permuted_minima_numpy(mixed: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out[p] = min(out[p], min_i(a[p] * mixed[i] + b[p])), uint32, in numpy."""
    num_perm = a.size
    buf = _block_buffer(_PERM_BLOCK)
    # _PERM_BLOCK permutations x up to _BLOCK shingles at a time: long rows make numpy's
    # row-wise min fast, and the block stays within a core's L2 cache.
    for start in range(0, mixed.size, _BLOCK):
        block = mixed[None, start : start + _BLOCK]
        for p in range(0, num_perm, _PERM_BLOCK):
            q = min(p + _PERM_BLOCK, num_perm)
            part = buf[: q - p, : block.shape[1]]
            np.multiply(a[p:q, None], block, out=part)
            np.add(part, b[p:q, None], out=part)
            np.minimum(out[p:q], part.min(axis=1), out=out[p:q])


def minhash_signature(text: str, ngram: int = 5, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    return signature_of_hashes(shingle_hashes(text, ngram), num_perm, seed)


def minhash_signatures(
    texts: Sequence[str], ngram: int = 5, num_perm: int = 128, seed: int = 1
) -> np.ndarray:
    """Signatures of many texts, shape (len(texts), num_perm), uint32. Picklable, numpy only:
    meant to run in worker processes, with the parent inserting into a `NearDedup`."""
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for i, text in enumerate(texts):
        out[i] = minhash_signature(text, ngram, num_perm, seed)
    return out


def _is_empty(signature: np.ndarray) -> bool:
    return bool(signature[0] == _EMPTY and (signature == _EMPTY).all())


def exact_digest(text: str) -> bytes:
    # SHA-256 (hardware-accelerated on current x86 and ARM CPUs: ~1.6x BLAKE2b's speed here), 16 bytes
    return hashlib.sha256(normalized_bytes(text)).digest()[:16]


class ExactDedup:
    """`add(key, text)` -> None when new (and remembered), else the key of the earlier equal text."""

    def __init__(self, scope: Literal["global", "prompt"] = "global") -> None:
        self.scope = scope
        self._seen: dict[Any, str] = {}

    def add(self, key: str, text: str, group: str | None = None) -> str | None:
        return self.add_digest(key, exact_digest(text), group)

    def match(self, digest: bytes, group: str | None = None) -> str | None:
        return self._seen.get((group, digest) if self.scope == "prompt" else digest)

    def add_digest(self, key: str, digest: bytes, group: str | None = None) -> str | None:
        other = self.match(digest, group)
        if other is None:
            self._seen[(group, digest) if self.scope == "prompt" else digest] = key
        return other


def import_datasketch() -> ModuleType:
    """`import datasketch`, without `scipy.integrate` until datasketch calls it.

    datasketch's `lsh.py` imports `scipy.integrate.quad` at module level for one purpose: choosing
    bands and rows from a threshold (`_optimal_param`). distill always passes them explicitly,
    yet the import costs ~0.45 s of CPU (scipy parses its docstrings), a third of the filter's
    fixed cost on a small input. So while datasketch is imported, `scipy.integrate` is a stand-in
    whose `quad` (and any other name, PEP 562) imports the real module on first use: same results,
    paid only if called. Nothing is done when either is imported already."""
    if "datasketch" in sys.modules or "scipy.integrate" in sys.modules:
        import datasketch

        return datasketch
    stand_in = ModuleType("scipy.integrate")

    def real() -> ModuleType:
        if sys.modules.get("scipy.integrate") is stand_in:
            del sys.modules["scipy.integrate"]
        return importlib.import_module("scipy.integrate")

    def quad(*args: Any, **kwargs: Any) -> Any:
        return real().quad(*args, **kwargs)

    def other(name: str) -> Any:
        if name.startswith("__"):  # the import system probing (`__path__`, ...): not a use
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in.quad = quad  # type: ignore[attr-defined]
    stand_in.__getattr__ = other  # type: ignore[method-assign]
    sys.modules["scipy.integrate"] = stand_in
    try:
        import datasketch
    finally:
        if sys.modules.get("scipy.integrate") is stand_in:
            del sys.modules["scipy.integrate"]
    return datasketch


class NearDedup:
    """MinHash LSH over kept texts. `add(key, text)` -> None when kept (and indexed), else the key
    of the earliest-indexed kept text whose estimated Jaccard is >= `cfg.threshold`. Texts without
    a single word are never indexed and always kept (exact dedup handles empty ones).

    The index is datasketch's `MinHashLSH` (16 bands x 8 rows by default); the caller may leave
    out rows that share no band with any other row (`rows_sharing_a_band`): they can never
    match nor be matched, so the result is the same with a far smaller index."""

    def __init__(self, cfg: DedupConfig | None = None) -> None:
        datasketch = import_datasketch()
        MinHash, MinHashLSH = datasketch.MinHash, datasketch.MinHashLSH

        self.cfg = cfg or DedupConfig()
        self._minhash = partial(MinHash, seed=self.cfg.seed, scheme="affine32")
        self._perms = permutations(self.cfg.num_perm, self.cfg.seed)
        self.lsh = MinHashLSH(num_perm=self.cfg.num_perm, params=(self.cfg.bands, self.cfg.rows))
        self._keys: list[str] = []
        self._groups: list[str | None] = []
        self._sigs = np.empty((1024, self.cfg.num_perm), dtype=np.uint32)
        self.last_similarity: float | None = None  # estimated Jaccard of the last match

    def __len__(self) -> int:
        return len(self._keys)

    def signature(self, text: str) -> np.ndarray:
        return minhash_signature(text, self.cfg.ngram, self.cfg.num_perm, self.cfg.seed)

    def add(self, key: str, text: str, group: str | None = None) -> str | None:
        return self.add_signature(key, self.signature(text), group)

    def match(self, signature: np.ndarray, group: str | None = None) -> tuple[str, float] | None:
        """The earliest kept text this signature duplicates, with the estimated Jaccard."""
        if _is_empty(signature):
            return None
        return self._match(self._minhash(hashvalues=signature, permutations=self._perms), group)

    def _match(self, sketch: Any, group: str | None) -> tuple[str, float] | None:
        found = self.lsh.query(sketch)
        if not found:
            return None
        idx = np.sort(np.fromiter(found, dtype=np.int64, count=len(found)))
        if self.cfg.scope == "prompt":
            idx = idx[[self._groups[i] == group for i in idx]]
        sims = (self._sigs[idx] == sketch.hashvalues).mean(axis=1)
        hits = np.flatnonzero(sims >= self.cfg.threshold)
        return (self._keys[idx[hits[0]]], float(sims[hits[0]])) if hits.size else None

    def add_signature(self, key: str, signature: np.ndarray, group: str | None = None) -> str | None:
        self.last_similarity = None
        if _is_empty(signature):
            return None
        sketch = self._minhash(hashvalues=signature, permutations=self._perms)
        if hit := self._match(sketch, group):
            self.last_similarity = hit[1]
            return hit[0]
        i = len(self._keys)
        if i == len(self._sigs):
            self._sigs = np.concatenate([self._sigs, np.empty_like(self._sigs)])
        self._sigs[i] = signature
        self._keys.append(key)
        self._groups.append(group)
        self.lsh.insert(i, sketch, check_duplication=False)
        return None


def rows_sharing_a_band(
    signatures: np.ndarray, bands: int, rows: int, subset: np.ndarray | None = None
) -> np.ndarray:
    """For each row of `signatures` (n x num_perm), or of its rows `subset` (indexes; one band of
    them copied at a time, not their whole signatures): whether one of its LSH bands (`rows`
    values) equals the same band of another such row. A row that shares no band can neither find
    a candidate in a `NearDedup` index of these rows nor become one, so a caller may leave it out
    of the index (and keep it) with the same results. Bands are compared by a 64-bit hash: a
    collision only marks more rows as sharing."""
    n = signatures.shape[0] if subset is None else len(subset)
    shared = np.zeros(n, dtype=np.bool_)
    if n < 2:
        return shared
    for b in range(bands):
        columns = slice(b * rows, (b + 1) * rows)
        part = (signatures[:, columns] if subset is None else signatures[subset, columns]).astype(U64)
        h = np.zeros(n, dtype=U64)
        for r in range(rows):
            h = fmix64(h ^ (part[:, r] * NGRAM_MULT[r % 5]))
        order = np.argsort(h, kind="stable")
        same = h[order[1:]] == h[order[:-1]]
        shared[order[1:][same]] = True
        shared[order[:-1][same]] = True
    return shared


def exact_duplicate_reason(field: str, other: str) -> str:
    return f"exact_duplicate: {field} equals {other}"


def near_duplicate_reason(field: str, other: str, similarity: float) -> str:
    return f"near_duplicate: {field} ~ {other} (jaccard ~{similarity:.2f})"


def prompt_duplicate_reason(prompt: str, other: str) -> str:
    return f"near_duplicate_prompt: problem of {prompt} duplicates {other}"


def duplicate_prompts(problems: Iterable[tuple[str, str]], cfg: DedupConfig) -> dict[str, str | None]:
    """`dedup.prompts`: (prompt id, problem) in preference order -> for each prompt, the earlier
    prompt whose problem it near-duplicates (MinHash as for the texts, across all prompts), or None.
    A prompt's first pair decides; later pairs of the same prompt are skipped."""
    index = NearDedup(cfg.model_copy(update={"scope": "global"}))
    out: dict[str, str | None] = {}
    for pid, problem in problems:
        if pid not in out:
            out[pid] = index.add(pid, problem)
    return out
