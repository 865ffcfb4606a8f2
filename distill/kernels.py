"""Compiled inner loops of the text hashing (`distill/text.py`: word hashes, word n-grams, the
exact-dedup normalisation) and of MinHash (`distill/filter/dedup.py`), with numba: a dependency of
distill, which vLLM brings too. Each kernel computes exactly what the numpy function beside its
caller computes (`tests/test_kernels.py` compares them on real traces); numpy runs where numba
cannot be imported, or with `DISTILL_NUMBA=0` (to compare the two).

Why: MinHash in numpy applies the 128 permutations in three passes over a block of
permutations x shingles in memory; compiled, each permutation's minimum stays in a register
(0.10 -> 0.02 ms per 19 KB trace). Word hashes: one pass over the bytes without a branch per
byte instead of ten numpy passes (0.07 -> 0.04 ms). Exact-dedup normalisation: bytes mapped and
runs of spaces squeezed in one pass instead of `bytes.translate` plus numpy's compaction (the
digest 0.033 -> 0.025 ms). Per trace, the filter's features went from 0.28 to 0.14 ms.

Compiled once and cached on disk (`cache=True`: in `__pycache__` beside this file, else numba's
user cache folder; without a writable one, compiled in every process). Loading them costs a
process ~0.6 s (numba's import and its typing registries): the filter's feature workers call
`warm()` as they start, while the main process (single-threaded at that point) verifies the first
input file on the other core.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np


@cache
def _jit() -> Callable[[Callable], Any] | None:
    """numba's `njit` with our options, or None when numba is off or cannot be imported."""
    if os.environ.get("DISTILL_NUMBA", "1") == "0":
        return None
    try:
        import numba
    except Exception:  # not installed, or broken (an llvmlite that does not match): numpy does it
        return None

    def jit(fn: Callable) -> Any:
        try:
            return numba.njit(cache=True, nogil=True, boundscheck=False)(fn)
        except RuntimeError:  # "no locator available": nowhere writable to cache
            return numba.njit(nogil=True, boundscheck=False)(fn)

    return jit


def _minhash(mixed, a, b, out):  # pragma: no cover - compiled; tests compare it with numpy
    for p in range(a.shape[0]):
        ap, bp, low = a[p], b[p], out[p]
        for i in range(mixed.shape[0]):
            # numba widens uint32 products to 64 bits: truncate like numpy's uint32 arithmetic
            value = np.uint32(ap * mixed[i] + bp)
            if value < low:
                low = value
        out[p] = low


def _word_hashes(raw, codes, powers, out):  # pragma: no cover - compiled; tests compare it with numpy
    zero, one = np.uint64(0), np.uint64(1)
    count, h, start, was_word = 0, zero, 0, zero
    for i in range(raw.shape[0]):
        code = codes[raw[i]]
        is_word = np.uint64(code != 0)
        out[count] = h  # the finished word's hash, kept only when a word ends here
        count += int(was_word & (one - is_word))
        # masks, not branches (a word ends every ~6 bytes: branches would be mispredicted)
        keep = -int(is_word)  # all ones inside a word, 0 after it
        h = (h + code * powers[i - start]) & np.uint64(keep)
        start = (start & keep) | ((i + 1) & ~keep)  # the next word starts after a separator
        was_word = is_word
    out[count] = h
    count += int(was_word)
    for j in range(count):
        out[j] = _fmix64(out[j])
    return count


def _ngrams(words, n, mult, out):  # pragma: no cover - compiled; tests compare it with numpy
    factors = np.empty(n, np.uint64)
    for k in range(n):
        factors[k] = mult[k % 5] + np.uint64(2 * (k // 5))
    for j in range(out.shape[0]):
        h = np.uint64(n)
        for k in range(n):
            h += words[j + k] * factors[k]
        out[j] = _fmix64(h)


def _squeeze(raw, table, out):  # pragma: no cover - compiled; tests compare it with Python
    j, was_space = 0, True  # as if a space came before: leading spaces are dropped
    for i in range(raw.shape[0]):
        code = table[raw[i]]
        is_space = code == 32
        out[j] = code
        j += not (is_space and was_space)  # no branch: a space follows a space every few bytes
        was_space = is_space
    if j and out[j - 1] == 32:  # at most one trailing space is left
        j -= 1
    return j


def _fmix64(h):  # pragma: no cover - compiled
    s33 = np.uint64(33)
    h ^= h >> s33
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> s33
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> s33
    return h


_failed = False  # set by `warm` when a kernel cannot be compiled or loaded


def _kernels() -> dict[str, Any] | None:
    return None if _failed else _compiled()


@cache
def _compiled() -> dict[str, Any] | None:
    jit = _jit()
    if jit is None:
        return None
    global _fmix64
    _fmix64 = jit(_fmix64)  # called from the kernels below: compiled first, resolved as a global
    return {
        "minhash": jit(_minhash),
        "word_hashes": jit(_word_hashes),
        "ngrams": jit(_ngrams),
        "squeeze": jit(_squeeze),
    }


def minhash_kernel() -> Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None] | None:
    """`kernel(mixed, a, b, out)`: `out[p] = min(out[p], min_i((a[p] * mixed[i] + b[p]) mod 2**32))`,
    all uint32 (datasketch's affine32 permutations of pre-mixed 32-bit hashes). None without numba."""
    kernels = _kernels()
    return kernels and kernels["minhash"]


def word_hash_kernel() -> Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], int] | None:
    """`kernel(raw, codes, powers, out) -> count`: one 64-bit hash per word of the UTF-8 bytes
    `raw` (runs of bytes whose `codes[byte]` is not 0: the byte, ASCII upper case folded, plus 1),
    written to `out[:count]` (`out` holds at least len(raw) // 2 + 2 values): sum(code * p**j)
    mod 2**64 over the word's bytes (`powers[j]` = p**j, at least len(raw) of them), then
    MurmurHash3's fmix64. None without numba."""
    kernels = _kernels()
    return kernels and kernels["word_hashes"]


def ngram_kernel() -> Callable[[np.ndarray, int, np.ndarray, np.ndarray], None] | None:
    """`kernel(words, n, mult, out)`: for each start j < len(out) = len(words) - n + 1,
    fmix64(sum_k words[j + k] * (mult[k % 5] + 2 * (k // 5)) + n). None without numba."""
    kernels = _kernels()
    return kernels and kernels["ngrams"]


def squeeze_kernel() -> Callable[[np.ndarray, np.ndarray, np.ndarray], int] | None:
    """`kernel(raw, table, out) -> count`: the bytes `raw` mapped through `table` (a byte -> byte
    array), every space (32) that follows a space dropped, leading and trailing spaces too, written
    to `out[:count]` (`out` holds at least len(raw) bytes). None without numba."""
    kernels = _kernels()
    return kernels and kernels["squeeze"]


def warm() -> bool:
    """Load (or compile, the first time) every kernel in this process now; forked children inherit
    them. Whether the kernels are in use: a kernel that fails to compile or load (a broken numba
    or cache) turns them all off in this process, and the numpy code runs instead (same values)."""
    global _failed
    kernels = _kernels()
    if kernels is None:
        return False
    # tiny arguments of the types the callers in `text.py` and `dedup.py` pass (else numba compiles again)
    u32, u64 = np.ones(4, np.uint32), np.ones(8, np.uint64)
    try:
        kernels["minhash"](u32, u32, u32, np.empty(4, np.uint32))
        codes = np.ones(256, np.uint64)
        kernels["word_hashes"](np.frombuffer(b"a b", np.uint8), codes, u64, np.empty(4, np.uint64))
        kernels["ngrams"](u64, 2, u64[:5], np.empty(7, np.uint64))
        byte = np.ones(4, np.uint8)
        kernels["squeeze"](byte, np.ones(256, np.uint8), np.empty(4, np.uint8))
    except Exception:  # numba's errors have no common base class
        _failed = True
        return False
    return True
