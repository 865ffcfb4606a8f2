"""Exact and MinHash near-dedup on real traces with planted near duplicates (the indexes; the
survivor order and the reasons of the stage's dedup are tested on its plan: test_plan.py)."""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from datasketch import MinHash
from pydantic import ValidationError

from distill.filter.dedup import (
    DedupConfig,
    ExactDedup,
    NearDedup,
    exact_digest,
    minhash_signature,
    minhash_signatures,
    permutations,
    rows_sharing_a_band,
)
from distill.text import normalize_text, shingle_hashes
from tests.filter.helpers import edit_to, s1k_traces


@pytest.fixture(scope="module")
def traces() -> list[str]:
    return s1k_traces()


def test_signature_is_datasketchs_affine32_minhash(traces):
    hashes = shingle_hashes(traces[0])
    reference = MinHash(num_perm=128, seed=1, hashfunc=int)
    reference.update_batch(hashes.tolist())
    assert np.array_equal(reference.hashvalues, minhash_signature(traces[0]))
    assert np.array_equal(permutations(128, 1), MinHash(num_perm=128, seed=1).permutations)
    assert np.array_equal(permutations(64, 7), MinHash(num_perm=64, seed=7).permutations)


def test_signatures_are_the_same_in_a_fresh_process(traces):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        theirs = pool.submit(minhash_signatures, traces).result()
    assert np.array_equal(theirs, minhash_signatures(traces))


def test_planted_near_duplicates_at_jaccard_085_are_caught(traces):
    near = NearDedup()
    for i, text in enumerate(traces):
        assert near.add(f"orig-{i}", text) is None
    sims, caught = [], 0
    for i, text in enumerate(traces):
        for seed in range(4):
            copy, j = edit_to(text, 0.85, seed)
            sims.append(j)
            caught += near.add(f"copy-{i}-{seed}", copy) == f"orig-{i}"
    assert min(sims) >= 0.82 and max(sims) <= 0.88
    assert caught == 20
    assert len(near) == 5  # duplicates are not indexed


def test_distinct_and_related_traces_are_kept(traces):
    near = NearDedup()
    assert [near.add(f"t{i}", t) for i, t in enumerate(traces)] == [None] * 5
    for i, text in enumerate(traces):
        variant, j = edit_to(text, 0.5, 100 + i)
        assert 0.45 < j < 0.52
        assert near.add(f"v{i}", variant) is None


def test_exact_dedup_normalises_case_and_whitespace_not_punctuation(traces):
    exact = ExactDedup()
    assert exact.add("a", traces[0]) is None
    assert exact.add("b", "  " + traces[0].upper().replace("\n", " \n\t ")) == "a"
    assert exact.add("c", traces[0].replace("$a+A", "$a-A", 1)) is None
    assert exact_digest("x  y") == exact_digest("X y\n")


def test_exact_normalisation_of_ascii_and_other_text():
    """ASCII text takes a short cut (one byte translation); both ways must give the definition:
    lowercase, runs of ASCII whitespace -> one space, ends stripped."""
    texts = ["A  b\t\tC\n", "  X\x0b\x0cY  ", "", "   ", "ÉCOLE  Über\nSTRASSE", "a\u00a0 B", "Σ  x\r\nY"]
    for text in texts:
        expected = re.sub(r"[ \t\n\r\x0b\x0c]+", " ", text.lower()).strip(" ")
        assert normalize_text(text) == expected, repr(text)
    assert exact_digest("ÉCOLE  X") == exact_digest("école x") != exact_digest("ecole x")


def test_empty_texts_are_never_near_duplicates():
    near = NearDedup()
    assert near.add("a", "") is None and near.add("b", "  ") is None and len(near) == 0


def test_config_validates():
    with pytest.raises(ValidationError):
        DedupConfig(bands=20, rows=8)
    with pytest.raises(ValidationError):
        DedupConfig(shingle=5)
    assert (
        NearDedup(DedupConfig(num_perm=64, bands=8, rows=8)).add("a", "one two three four five six") is None
    )


def _run_python(code: str) -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_datasketch_without_scipy_integrate_until_used() -> None:
    """`import_datasketch` leaves scipy.integrate (~0.45 s to import) out until datasketch calls it;
    the LSH distill builds (explicit bands) works without it, and the threshold path still gets
    the real `quad`: the same bands and rows as a plain `import datasketch`."""
    lazy = _run_python(
        "import sys\n"
        "from distill.filter.dedup import import_datasketch\n"
        "ds = import_datasketch()\n"
        "lsh = ds.MinHashLSH(num_perm=16, params=(4, 4))\n"
        "m = ds.MinHash(num_perm=16); m.update(b'x'); lsh.insert('a', m)\n"
        "print('scipy.integrate' in sys.modules, lsh.query(m))\n"
        "t = ds.MinHashLSH(threshold=0.8, num_perm=128)\n"
        "import scipy.integrate\n"
        "print(t.b, t.r, type(sys.modules['scipy.integrate']).__name__, hasattr(scipy.integrate, 'solve_ivp'))\n"
    ).split("\n")
    plain = _run_python(
        "import datasketch\nt = datasketch.MinHashLSH(threshold=0.8, num_perm=128)\nprint(t.b, t.r)"
    )
    assert lazy[0] == "False ['a']"
    assert lazy[1] == f"{plain.strip()} module True"
    already = _run_python(
        "import sys, scipy.integrate\n"
        "real = sys.modules['scipy.integrate']\n"
        "from distill.filter.dedup import import_datasketch\n"
        "ds = import_datasketch()\n"
        "print(ds is sys.modules['datasketch'], sys.modules['datasketch.lsh'].integrate is real.quad)\n"
    )
    assert already.strip() == "True True"


def test_rows_sharing_a_band_of_a_subset_is_that_of_the_subset_copied():
    """The plan passes the row indexes instead of copying the rows' signatures (512 bytes a row)."""
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 4, size=(200, 128), dtype=np.uint32)  # few values: many bands shared
    subset = np.sort(rng.choice(200, 120, replace=False))
    assert (
        rows_sharing_a_band(sigs, 16, 8, subset).tolist() == rows_sharing_a_band(sigs[subset], 16, 8).tolist()
    )
    assert rows_sharing_a_band(sigs, 16, 8, subset).any()
