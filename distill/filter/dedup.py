"""Exact and near-duplicate removal of traces: normalised-text digests, then MinHash LSH.

Rows arrive ordered by preference (the caller sorts, e.g. with `preference_key`: shortest
first, ties by id); the first row of a duplicate cluster survives, every later one is dropped
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

Speed: words are hashed in one pass over the UTF-8 bytes (a polynomial hash per word),
n-grams combine word hashes, and each permutation's minimum is taken over all shingles, in
numba-compiled loops (`distill/filter/kernels.py`; the numpy code here computes the same values
where numba is unavailable, or with `DISTILL_NUMBA=0`). The values equal datasketch's own
`affine32` scheme fed the same 32-bit shingle hashes
(`MinHash(hashfunc=lambda h: h).update_batch(shingle_hashes(text))`), so the sketches are real
datasketch sketches. `minhash_signatures` never imports datasketch, cheap to call in
worker processes: ~0.07 ms per 19 KB trace (numpy: ~0.2 ms; datasketch's `update_batch` with
SHA1 and Python shingles: ~2.8 ms).
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache, partial
from types import ModuleType
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from distill.config import StrictModel
from distill.filter.kernels import minhash_kernel, ngram_kernel, squeeze_kernel, word_hash_kernel

_U64 = np.uint64
_EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's value of an empty MinHash
# Word bytes: ASCII letters and digits, and every byte of a non-ASCII character.
_WORD_BYTE = np.zeros(256, dtype=np.int8)
_WORD_BYTE[list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")] = 1
_WORD_BYTE[128:] = 1
_SPACE_TABLE = bytes.maketrans(b"\t\n\r\x0b\x0c", b"     ")  # ASCII whitespace -> space
_LOWER_SPACE_TABLE = bytes.maketrans(  # and ASCII upper case -> lower case
    b"\t\n\r\x0b\x0cABCDEFGHIJKLMNOPQRSTUVWXYZ", b"     abcdefghijklmnopqrstuvwxyz"
)
_P = 0x100000001B3  # odd, so invertible mod 2**64
_P_INV = pow(_P, -1, 1 << 64)
_NGRAM_MULT = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63],
    dtype=_U64,
)
_BLOCK = 8192  # shingles per block (x _PERM_BLOCK permutations x 4 bytes = 1 MiB, cache sized)
_PERM_BLOCK = 32  # permutations per block
_powers: list[np.ndarray] = [np.ones(1, _U64), np.ones(1, _U64)]


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


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place (on an array the caller owns: no temporaries)."""
    tmp = h >> _U64(33)
    h ^= tmp
    h *= _U64(0xFF51AFD7ED558CCD)
    np.right_shift(h, _U64(33), out=tmp)
    h ^= tmp
    h *= _U64(0xC4CEB9FE1A85EC53)
    np.right_shift(h, _U64(33), out=tmp)
    h ^= tmp
    return h


def _fmix32(h: np.ndarray) -> np.ndarray:  # datasketch's affine32 pre-mix (MurmurHash3 finaliser)
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _pow_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i (mod 2**64) for i < n, grown on demand and kept per process."""
    if len(_powers[0]) < n:
        size = max(n, 2 * len(_powers[0]), 1 << 15)
        for i, base in enumerate((_P, _P_INV)):
            table = np.full(size, _U64(base), dtype=_U64)
            table[0] = 1
            _powers[i] = np.cumprod(table)  # wraps mod 2**64, as intended
    return _powers[0], _powers[1]


# byte -> its code in a word hash (ASCII upper case folded, + 1: never 0), 0 for a separator
_WORD_CODES = np.where(
    _WORD_BYTE.astype(bool),
    np.frombuffer(bytes(range(256)).lower(), np.uint8).astype(_U64) + _U64(1),
    _U64(0),
).astype(_U64)
_WORD_TABLE = bytes(_WORD_BYTE.astype(np.uint8).tolist())  # for bytes.translate: 1 = word byte
_last_utf8: tuple[str | None, bytes] = (None, b"")
_last_words: tuple[str | None, np.ndarray] = (None, np.empty(0, _U64))


def utf8(text: str) -> bytes:
    """`text.encode("utf-8")`, the last result remembered (by the text's identity): the
    readability filters and the word hashes of one reasoning encode it once."""
    global _last_utf8
    last = _last_utf8
    if last[0] is text:
        return last[1]
    raw = text.encode("utf-8")
    _last_utf8 = (text, raw)
    return raw


def word_hashes(text: str) -> np.ndarray:
    """One stable 64-bit hash per word. Words are runs of ASCII letters/digits and non-ASCII
    characters; ASCII punctuation, LaTeX markup and whitespace separate them; ASCII is
    case-folded. The same in every process (no Python `hash`).

    The last result is remembered (by the text's identity): the readability filter and the
    MinHash of the same reasoning hash its words once. Callers must not modify the array."""
    global _last_words
    last = _last_words
    if last[0] is text:
        return last[1]
    raw = utf8(text)
    kernel = word_hash_kernel()
    if not raw:
        out = np.empty(0, _U64)
    elif kernel is not None:  # the same values in one compiled pass (`distill/filter/kernels.py`)
        out = np.empty(len(raw) // 2 + 2, _U64)  # words are separated: at most one per two bytes
        out = out[: kernel(np.frombuffer(raw, np.uint8), _WORD_CODES, _pow_tables(len(raw))[0], out)]
    else:
        out = _word_hashes_numpy(raw)
    _last_words = (text, out)
    return out


def _word_hashes_numpy(raw: bytes) -> np.ndarray:
    """`word_hashes` of non-empty UTF-8 bytes in numpy: sum((byte + 1) * P**j) over each word's
    bytes from one cumulative sum of (byte + 1) * P**i, then fmix64."""
    n = len(raw)
    # word-byte mask in C (bytes.translate), then the edges of its runs: positions alternate
    # start, end, start, end... since the mask is padded with False on both sides
    mask = np.zeros(n + 2, dtype=np.bool_)
    mask[1:-1] = np.frombuffer(raw.translate(_WORD_TABLE), dtype=np.bool_)
    edges = np.flatnonzero(mask[1:] != mask[:-1])
    starts, ends = edges[0::2], edges[1::2]
    pw, inv = _pow_tables(n)
    codes = np.frombuffer(raw.lower(), dtype=np.uint8).astype(_U64)  # bytes.lower: ASCII only
    codes += _U64(1)  # byte -> code, never 0
    codes *= pw[:n]
    prefix = np.empty(n + 1, _U64)
    prefix[0] = 0
    np.cumsum(codes, out=prefix[1:])
    out = prefix[ends]
    out -= prefix[starts]
    out *= inv[starts]
    return _fmix64(out)


_last_grams: tuple[np.ndarray | None, int, np.ndarray] = (None, 0, np.empty(0, _U64))


def ngram_hashes(words: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every run of `n` consecutive word hashes (one over all words if fewer).

    The last result is remembered (by the words array's identity and n): the repetition filter
    builds its 10-grams from the 5-grams that MinHash shingles the same reasoning with. Callers
    must not modify the array."""
    global _last_grams
    last = _last_grams
    if last[0] is words and last[1] == n:
        return last[2]
    if words.size == 0:
        return np.empty(0, _U64)
    m = min(n, words.size)
    kernel = ngram_kernel()
    if kernel is not None:  # the same values, compiled
        out = np.empty(words.size - m + 1, _U64)
        kernel(words, m, _NGRAM_MULT, out)
    else:
        out = _ngram_hashes_numpy(words, m)
    _last_grams = (words, n, out)
    return out


def _ngram_hashes_numpy(words: np.ndarray, m: int) -> np.ndarray:
    """fmix64(sum_k words[j + k] * (mult[k % 5] + 2 * (k // 5)) + m) for every start j, m <= len(words)."""
    count = words.size - m + 1
    acc = words[:count] * _NGRAM_MULT[0]
    term = np.empty_like(acc)
    for k in range(1, m):
        acc += np.multiply(words[k : k + count], _NGRAM_MULT[k % 5] + _U64(2 * (k // 5)), out=term)
    acc += _U64(m)
    return _fmix64(acc)


def paired_ngram_hashes(words: np.ndarray, n: int) -> np.ndarray:
    """Hashes of every run of `n` consecutive words for an even n < len(words), each made from
    the two (n/2)-gram hashes it consists of: equal n-grams get equal hashes, distinct ones
    differ but for 64-bit collisions (so counts of distinct n-grams are those of `ngram_hashes`),
    at two vector operations instead of n when the (n/2)-grams are already known. Not mixed
    further: meant for counting, not for bucketing (unlike `ngram_hashes`)."""
    half = n // 2
    grams = ngram_hashes(words, half)
    count = words.size - n + 1
    # the halves are mixed hashes already: a linear combination keeps distinct pairs distinct
    # (but for 64-bit collisions); no further mixing, since these hashes are only compared
    out = grams[:count] * _NGRAM_MULT[1]
    out += grams[half : half + count]
    return out


def shingle_hashes(text: str, ngram: int = 5) -> np.ndarray:
    """The 32-bit hashes of the word n-gram shingles of `text` (with repeats)."""
    return (ngram_hashes(word_hashes(text), ngram) >> _U64(32)).astype(np.uint32)


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
    if kernel is not None:  # the same values, compiled (`distill/filter/kernels.py`)
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


def _normalized_bytes(text: str) -> bytes:
    if text.isascii():  # O(1); then the (shared) UTF-8 bytes lowered and spaced in one pass
        raw, table = utf8(text), _LOWER_SPACE_TABLE
    else:
        raw, table = text.lower().encode("utf-8"), _SPACE_TABLE
    kernel = squeeze_kernel()
    if kernel is not None:  # the same bytes, compiled: one pass instead of four (-35% of the digest)
        out = _squeeze_buffer(len(raw))
        return out[: kernel(np.frombuffer(raw, np.uint8), _TABLES[table], out)].tobytes()
    raw = raw.translate(table)
    if b"  " in raw:  # drop every space that follows a space
        data = np.frombuffer(raw, dtype=np.uint8)
        keep = np.empty(data.size, dtype=np.bool_)
        keep[0] = True
        np.not_equal(data[1:], 32, out=keep[1:])
        keep[1:] |= data[:-1] != 32
        raw = data[keep].tobytes()
    return raw.strip(b" ")


_TABLES = {t: np.frombuffer(t, np.uint8) for t in (_SPACE_TABLE, _LOWER_SPACE_TABLE)}
_squeeze_out = np.empty(1 << 16, np.uint8)


def _squeeze_buffer(size: int) -> np.ndarray:
    """Scratch space for the squeeze kernel, reused (grown to the longest text seen)."""
    global _squeeze_out
    if _squeeze_out.size < size:
        _squeeze_out = np.empty(max(size, 2 * _squeeze_out.size), np.uint8)
    return _squeeze_out


def normalize_text(text: str) -> str:
    """Exact-dedup normalisation: lowercase, runs of ASCII whitespace -> one space, ends
    stripped (a compiled pass, else numpy: twice as fast as `" ".join(text.lower().split())`)."""
    return _normalized_bytes(text).decode("utf-8")


def exact_digest(text: str) -> bytes:
    # SHA-256 (hardware-accelerated on current x86 and ARM CPUs: ~1.6x BLAKE2b's speed here), 16 bytes
    return hashlib.sha256(_normalized_bytes(text)).digest()[:16]


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


def rows_sharing_a_band(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """For each row of `signatures` (n x num_perm): whether one of its LSH bands (`rows` values)
    equals the same band of another row. A row that shares no band can neither find a candidate
    in a `NearDedup` index of these rows nor become one, so a caller may leave it out of the
    index (and keep it) with the same results. Bands are compared by a 64-bit hash: a collision
    only marks more rows as sharing."""
    n = signatures.shape[0]
    shared = np.zeros(n, dtype=np.bool_)
    if n < 2:
        return shared
    for b in range(bands):
        part = signatures[:, b * rows : (b + 1) * rows].astype(_U64)
        h = np.zeros(n, dtype=_U64)
        for r in range(rows):
            h = _fmix64(h ^ (part[:, r] * _NGRAM_MULT[r % 5]))
        order = np.argsort(h, kind="stable")
        same = h[order[1:]] == h[order[:-1]]
        shared[order[1:][same]] = True
        shared[order[:-1][same]] = True
    return shared


def preference_key(row: Mapping[str, Any]) -> tuple[int, str]:
    """The default survivor order: fewest completion tokens (else characters / 4), then id."""
    tokens = row.get("completion_tokens")
    if tokens is None:
        tokens = len(row.get("completion") or "") // 4
    return int(tokens), str(row.get("id"))


def _prepare(
    texts: Sequence[str], exact: bool, near: bool, ngram: int, num_perm: int, seed: int
) -> tuple[list[bytes] | None, np.ndarray | None]:
    digests = [exact_digest(t) for t in texts] if exact else None
    return digests, minhash_signatures(texts, ngram, num_perm, seed) if near else None


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


def dedup_rows(
    rows: Sequence[Mapping[str, Any]], cfg: DedupConfig | None = None, processes: int = 1, chunk: int = 256
) -> list[str | None]:
    """Drop reasons (None = kept) for `rows`, already ordered by preference. Digests and
    signatures are computed in `processes` worker processes, chunk by chunk, while this process
    walks the results in order through the indexes."""
    cfg = cfg or DedupConfig()
    texts = [row.get(cfg.field) or "" for row in rows]
    prep: Callable[[Sequence[str]], tuple[list[bytes] | None, np.ndarray | None]]
    prep = partial(
        _prepare, exact=cfg.exact, near=cfg.near, ngram=cfg.ngram, num_perm=cfg.num_perm, seed=cfg.seed
    )
    parts = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    dup_prompts = (
        duplicate_prompts(((row["prompt_id"], row.get("problem") or "") for row in rows), cfg)
        if cfg.prompts
        else {}
    )
    exact, near = ExactDedup(cfg.scope), NearDedup(cfg)
    reasons: list[str | None] = []
    pool = ProcessPoolExecutor(processes) if processes > 1 and len(parts) > 1 else None
    try:
        results = pool.map(prep, parts) if pool else map(prep, parts)
        for offset, (digests, sigs) in zip(range(0, len(rows), chunk), results, strict=True):
            for i, row in enumerate(rows[offset : offset + chunk]):
                key, group = str(row["id"]), row.get("prompt_id")
                if dup_prompts.get(group):
                    reasons.append(prompt_duplicate_reason(group, dup_prompts[group]))
                elif digests and (other := exact.match(digests[i], group)) is not None:
                    reasons.append(exact_duplicate_reason(cfg.field, other))
                elif sigs is not None and (other := near.add_signature(key, sigs[i], group)) is not None:
                    reasons.append(near_duplicate_reason(cfg.field, other, near.last_similarity))
                else:
                    if digests:
                        exact.add_digest(key, digests[i], group)  # only survivors are remembered
                    reasons.append(None)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return reasons
