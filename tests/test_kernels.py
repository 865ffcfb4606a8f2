"""The compiled kernels (`distill/kernels.py`) compute exactly what the numpy code of their callers
(`distill/text.py`, `distill/filter/dedup.py`) computes, on real traces and edge cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from distill import kernels
from distill import text as dtext
from distill.filter import dedup
from tests.conftest import DATA

TRACES = DATA / "reasoning_traces_s1k_sample.parquet"
EDGE_CASES = [
    "a",
    "A b",
    "  leading and trailing  ",
    "ABC,def;GHI",
    "x" * 5000,  # one long word: powers far beyond a usual word's length
    "é ü x ß",
    "日本語のテキスト and English",
    "\\boxed{\\frac{1}{2}} = 0.5",
    "",
]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rows = pq.read_table(TRACES).to_pylist()
    real = [text for r in rows for text in r.values() if isinstance(text, str)]
    return real + EDGE_CASES


@pytest.fixture(scope="module")
def compiled() -> dict:
    # numba is a dependency: the filter's speed figures assume the kernels, so their absence fails
    assert kernels.warm(), "numba kernels unavailable (DISTILL_NUMBA=0, or numba failed to import)"
    return {
        "minhash": kernels.minhash_kernel(),
        "words": kernels.word_hash_kernel(),
        "ngrams": kernels.ngram_kernel(),
        "squeeze": kernels.squeeze_kernel(),
    }


def kernel_word_hashes(compiled, text: str) -> np.ndarray:
    raw = text.encode("utf-8")
    out = np.empty(len(raw) // 2 + 2, np.uint64)
    count = compiled["words"](
        np.frombuffer(raw, np.uint8), dtext._WORD_CODES, dtext._pow_tables(len(raw) + 1)[0], out
    )
    return out[:count]


def test_word_hashes_equal_numpys(compiled, texts):
    total = 0
    for text in texts:
        expected = dtext._word_hashes_numpy(text.encode("utf-8")) if text else np.empty(0, np.uint64)
        got = kernel_word_hashes(compiled, text)
        np.testing.assert_array_equal(got, expected, err_msg=repr(text[:80]))
        total += got.size
    assert total > 10_000  # real traces (5 s1K rows), not only the edge cases
    # words as documented: case folded, punctuation separates, non-ASCII belongs to words
    assert kernel_word_hashes(compiled, "Ab")[0] == kernel_word_hashes(compiled, "aB")[0]
    assert kernel_word_hashes(compiled, "ab,cd").size == 2
    assert kernel_word_hashes(compiled, "ab écd").size == 2


@pytest.mark.parametrize("n", [1, 2, 5, 10, 13])
def test_ngram_hashes_equal_numpys(compiled, texts, n):
    for text in texts[:40] + EDGE_CASES[:-1]:
        words = dtext._word_hashes_numpy(text.encode("utf-8"))
        m = min(n, words.size)
        out = np.empty(words.size - m + 1, np.uint64)
        compiled["ngrams"](words, m, dtext.NGRAM_MULT, out)
        np.testing.assert_array_equal(out, dtext._ngram_hashes_numpy(words, m))


def test_minhash_minima_equal_numpys(compiled, texts):
    a, b = dedup.permutations(128, 1)
    many = " ".join(f"w{i}" for i in range(20_000))  # more shingles than one numpy block (8,192)
    for text in [*texts[:60], many]:
        hashes = dtext.shingle_hashes(text)
        mixed = dedup._fmix32(hashes.astype(np.uint32))
        got = np.full(128, 0xFFFFFFFF, np.uint32)
        expected = got.copy()
        compiled["minhash"](mixed, a, b, got)
        dedup._permuted_minima_numpy(mixed, a, b, expected)
        np.testing.assert_array_equal(got, expected)


SPACES = ["  a", "a  ", " \t\n a \r\x0b\x0c b  ", "\n\n\n", " ", "A\u00a0B", "É\n\nÜ  ß", "x" * 70_000]


def test_exact_dedup_normalisation_equals_pythons(compiled, texts, monkeypatch):
    """The squeeze kernel normalises exactly like the numpy code and like the documented rule
    (lower case, runs of ASCII whitespace -> one space, ends stripped), so digests are the same."""
    cases = [*texts, *SPACES]
    got = [dtext.normalized_bytes(t) for t in cases]
    assert compiled["squeeze"] is not None and dtext.squeeze_kernel() is compiled["squeeze"]
    monkeypatch.setattr(dtext, "squeeze_kernel", lambda: None)
    assert got == [dtext.normalized_bytes(t) for t in cases]
    ws = " \t\n\r\x0b\x0c"
    for text, value in zip(cases, got, strict=True):
        parts = text.lower()
        for c in ws[1:]:
            parts = parts.replace(c, " ")
        assert value == " ".join(p for p in parts.split(" ") if p).encode("utf-8"), repr(text[:80])
    assert got[len(texts) + 5] == "a\u00a0b".encode()  # a no-break space is no ASCII whitespace


def test_filter_features_use_the_kernels_and_numba_can_be_turned_off(texts):
    """With DISTILL_NUMBA=0 the numpy code runs (no kernel), and the signatures are the same."""
    script = (
        "import json, sys; from distill import kernels; from distill.filter import dedup;"
        "texts = json.load(sys.stdin);"
        "print(json.dumps([kernels.minhash_kernel() is None,"
        " [dedup.minhash_signature(t).tolist() for t in texts],"
        " [dedup.exact_digest(t).hex() for t in texts]]))"
    )
    sample = [*texts[:5], "Ab cd ef gh ij kl mn"]
    runs = {}
    for flag in ("0", "1"):
        env = {**os.environ, "DISTILL_NUMBA": flag}
        proc = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(sample),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        runs[flag] = json.loads(proc.stdout)
    assert runs["0"][0] is True and runs["1"][0] is False
    assert runs["0"][1] == runs["1"][1] and runs["0"][2] == runs["1"][2]


def test_a_kernel_that_fails_to_compile_turns_them_off(monkeypatch, texts):
    """A broken numba (or cache) must not break the filter: `warm` reports it, the accessors give
    None, and the callers compute the same signatures with numpy."""
    expected = [dedup.minhash_signature(t) for t in texts[:5]]

    def broken(*args):
        raise RuntimeError("LLVM ERROR: simulated")

    monkeypatch.setattr(kernels, "_failed", False)
    monkeypatch.setattr(
        kernels, "_compiled", lambda: dict.fromkeys(("minhash", "word_hashes", "ngrams", "squeeze"), broken)
    )
    monkeypatch.setattr(dtext, "_last_words", (None, np.empty(0, np.uint64)))  # no remembered result
    assert kernels.warm() is False
    assert (
        kernels.minhash_kernel() is None
        and kernels.word_hash_kernel() is None
        and kernels.ngram_kernel() is None
        and kernels.squeeze_kernel() is None
    )
    assert all(
        np.array_equal(dedup.minhash_signature(t), e) for t, e in zip(texts[:5], expected, strict=True)
    )
