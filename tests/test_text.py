"""Text hashing primitives (`distill/text.py`): words, word n-grams, shingles, normalisation."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from distill.text import (
    ngram_hashes,
    normalize_text,
    normalize_words,
    paired_ngram_hashes,
    shingle_hashes,
    utf8,
    word_hashes,
    word_ngrams,
)
from tests.conftest import DATA


@pytest.fixture(scope="module")
def traces() -> list[str]:
    table = pq.read_table(DATA / "reasoning_traces_s1k_sample.parquet")
    return table.column("gemini_thinking_trajectory").to_pylist()


def test_words_are_case_folded_and_split_on_punctuation():
    assert np.array_equal(word_hashes("Let $f(x)=1$, so F(X)"), word_hashes("let f x 1 so f x"))
    assert len(word_hashes("café naïve x_1 20!")) == 5
    assert word_hashes("").size == 0 and shingle_hashes("...").size == 0


def test_ngrams_hash_runs_of_words_and_shingles_are_their_top_32_bits(traces):
    words = word_hashes("one two three one two three")
    grams = ngram_hashes(words, 3)
    assert grams.size == 4 and grams[0] == grams[3] and len(set(grams.tolist())) == 3
    assert ngram_hashes(word_hashes("just two"), 5).size == 1  # fewer words than n: one over all
    text = traces[0]
    expected = (ngram_hashes(word_hashes(text), 5) >> np.uint64(32)).astype(np.uint32)
    assert np.array_equal(shingle_hashes(text), expected)


@pytest.mark.parametrize("n", [2, 10])
def test_paired_ngram_hashes_count_distinct_ngrams_like_ngram_hashes(traces, n):
    for text in [*traces, traces[0] + "\n" + traces[0][-4000:]]:
        words = word_hashes(text)
        paired, plain = paired_ngram_hashes(words, n), ngram_hashes(words, n)
        assert paired.size == plain.size
        assert np.unique(paired).size == np.unique(plain).size


def test_results_are_remembered_by_the_texts_identity(traces):
    text = traces[1]
    assert utf8(text) is utf8(text) and utf8(text) == text.encode("utf-8")
    assert word_hashes(text) is word_hashes(text)
    copy = "".join(list(text))  # an equal text, another object: computed again, the same values
    assert copy is not text and np.array_equal(word_hashes(copy), word_hashes(text))


def test_exact_dedup_normalisation_keeps_punctuation():
    assert normalize_text("  A+B\t=\n\nC  ") == "a+b = c"
    assert normalize_text("a-b") != normalize_text("a+b")


def test_normalised_words_and_their_ngrams():
    assert normalize_words("Janet’s DUCKS, lay—16 eggs!") == ["janet", "s", "ducks", "lay", "16", "eggs"]
    assert normalize_words("ﬁve x_1") == ["five", "x", "1"]  # NFKC; "_" separates
    assert word_ngrams(["a", "b", "c"], 2) == ["a b", "b c"]
    assert word_ngrams(["a", "b"], 3) == []
