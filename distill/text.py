"""Text hashing primitives: words, word hashes, n-grams, shingles, normalisation.

One home for the text-level work that dedup (`distill/filter/dedup.py`), decontamination
(`distill/filter/decontam.py`) and the readability filters (`distill/filter/readability.py`) share.
Two notions of a word, each for its job:

- **Hashed words** (`word_hashes`, `ngram_hashes`, `shingle_hashes`): runs of ASCII letters and
  digits and of non-ASCII characters in the UTF-8 bytes; ASCII punctuation, LaTeX markup and
  whitespace separate them; ASCII is case-folded. Each word is one stable 64-bit hash (the same
  in every process: no Python `hash`), word n-grams combine word hashes. MinHash shingles
  (dedup) and the repetition filter's 10-grams (readability) are built from them.
- **Normalised words** (`normalize_words`, `word_ngrams`): Unicode NFKC, lowercase, runs of
  letters and digits, as plain strings: decontamination's n-grams, which must survive pickling
  to worker processes and compare across punctuation, curly quotes and spacing.

Exact-dedup normalisation (`normalize_text`, `normalized_bytes`): lowercase, runs of ASCII
whitespace -> one space, ends stripped; punctuation kept.

Speed: words are hashed in one pass over the UTF-8 bytes (a polynomial hash per word), n-grams
combine word hashes, and the exact-dedup normalisation maps and squeezes the bytes in one pass, in
numba-compiled loops (`distill/kernels.py`); the numpy code here computes the same values where
numba is unavailable, or with `DISTILL_NUMBA=0`. The last UTF-8 encoding, word hashes and n-gram
hashes are remembered by the text's identity: the readability filters and the MinHash of one
reasoning encode and hash it once.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from distill.kernels import ngram_kernel, squeeze_kernel, word_hash_kernel

U64 = np.uint64
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
# odd 64-bit multipliers that combine hashes (word n-grams; dedup's LSH band keys)
NGRAM_MULT = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63],
    dtype=U64,
)
_powers: list[np.ndarray] = [np.ones(1, U64), np.ones(1, U64)]


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place (on an array the caller owns: no temporaries)."""
    tmp = h >> U64(33)
    h ^= tmp
    h *= U64(0xFF51AFD7ED558CCD)
    np.right_shift(h, U64(33), out=tmp)
    h ^= tmp
    h *= U64(0xC4CEB9FE1A85EC53)
    np.right_shift(h, U64(33), out=tmp)
    h ^= tmp
    return h


def _pow_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i (mod 2**64) for i < n, grown on demand and kept per process."""
    if len(_powers[0]) < n:
        size = max(n, 2 * len(_powers[0]), 1 << 15)
        for i, base in enumerate((_P, _P_INV)):
            table = np.full(size, U64(base), dtype=U64)
            table[0] = 1
            _powers[i] = np.cumprod(table)  # wraps mod 2**64, as intended
    return _powers[0], _powers[1]


# byte -> its code in a word hash (ASCII upper case folded, + 1: never 0), 0 for a separator
_WORD_CODES = np.where(
    _WORD_BYTE.astype(bool),
    np.frombuffer(bytes(range(256)).lower(), np.uint8).astype(U64) + U64(1),
    U64(0),
).astype(U64)
_WORD_TABLE = bytes(_WORD_BYTE.astype(np.uint8).tolist())  # for bytes.translate: 1 = word byte
_last_utf8: tuple[str | None, bytes] = (None, b"")
_last_words: tuple[str | None, np.ndarray] = (None, np.empty(0, U64))


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
        out = np.empty(0, U64)
    elif kernel is not None:  # the same values in one compiled pass (`distill/kernels.py`)
        out = np.empty(len(raw) // 2 + 2, U64)  # words are separated: at most one per two bytes
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
    codes = np.frombuffer(raw.lower(), dtype=np.uint8).astype(U64)  # bytes.lower: ASCII only
    codes += U64(1)  # byte -> code, never 0
    codes *= pw[:n]
    prefix = np.empty(n + 1, U64)
    prefix[0] = 0
    np.cumsum(codes, out=prefix[1:])
    out = prefix[ends]
    out -= prefix[starts]
    out *= inv[starts]
    return fmix64(out)


_last_grams: tuple[np.ndarray | None, int, np.ndarray] = (None, 0, np.empty(0, U64))


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
        return np.empty(0, U64)
    m = min(n, words.size)
    kernel = ngram_kernel()
    if kernel is not None:  # the same values, compiled
        out = np.empty(words.size - m + 1, U64)
        kernel(words, m, NGRAM_MULT, out)
    else:
        out = _ngram_hashes_numpy(words, m)
    _last_grams = (words, n, out)
    return out


def _ngram_hashes_numpy(words: np.ndarray, m: int) -> np.ndarray:
    """fmix64(sum_k words[j + k] * (mult[k % 5] + 2 * (k // 5)) + m) for every start j, m <= len(words)."""
    count = words.size - m + 1
    acc = words[:count] * NGRAM_MULT[0]
    term = np.empty_like(acc)
    for k in range(1, m):
        acc += np.multiply(words[k : k + count], NGRAM_MULT[k % 5] + U64(2 * (k // 5)), out=term)
    acc += U64(m)
    return fmix64(acc)


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
    out = grams[:count] * NGRAM_MULT[1]
    out += grams[half : half + count]
    return out


def shingle_hashes(text: str, ngram: int = 5) -> np.ndarray:
    """The 32-bit hashes of the word n-gram shingles of `text` (with repeats)."""
    return (ngram_hashes(word_hashes(text), ngram) >> U64(32)).astype(np.uint32)


# --- exact-dedup normalisation -------------------------------------------------------------------


def normalized_bytes(text: str) -> bytes:
    """`normalize_text(text)` as UTF-8 bytes (what exact dedup digests)."""
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
    return normalized_bytes(text).decode("utf-8")


# --- normalised words (decontamination) ----------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


def normalize_words(text: str) -> list[str]:
    """Unicode NFKC, lowercase, then the runs of letters and digits."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def word_ngrams(words: list[str], n: int) -> list[str]:
    """Every run of `n` consecutive words, joined by spaces (none when fewer than n words)."""
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
