"""Exact and MinHash near-dedup on real traces with planted near duplicates."""

from __future__ import annotations

import multiprocessing
import random
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash
from pydantic import ValidationError

from distill.filter.dedup import (
    DedupConfig,
    ExactDedup,
    NearDedup,
    dedup_rows,
    exact_digest,
    minhash_signature,
    minhash_signatures,
    normalize_text,
    permutations,
    preference_key,
    shingle_hashes,
    word_hashes,
)

TRACES = Path(__file__).resolve().parents[2] / "data" / "reasoning_traces_s1k_sample.parquet"


@pytest.fixture(scope="module")
def traces() -> list[str]:
    return [r["gemini_thinking_trajectory"] for r in pq.read_table(TRACES).to_pylist()]


def jaccard(a: str, b: str) -> float:
    sa, sb = set(shingle_hashes(a).tolist()), set(shingle_hashes(b).tolist())
    return len(sa & sb) / len(sa | sb)


def edit_to(text: str, target: float, seed: int) -> tuple[str, float]:
    """`text` with random words replaced until its word 5-gram Jaccard with `text` is ~target."""
    rng, toks = random.Random(seed), text.split(" ")
    vocab = sorted({t for t in toks if t.isalpha()})
    out, order, done = list(toks), rng.sample(range(len(toks)), len(toks)), 0
    step = max(1, len(toks) // 400)
    while jaccard(text, " ".join(out)) > target + 0.01:
        for i in order[done : done + step]:
            out[i] = rng.choice(vocab)
        done += step
    return " ".join(out), jaccard(text, " ".join(out))


def test_signature_is_datasketchs_affine32_minhash(traces):
    hashes = shingle_hashes(traces[0])
    reference = MinHash(num_perm=128, seed=1, hashfunc=int)
    reference.update_batch(hashes.tolist())
    assert np.array_equal(reference.hashvalues, minhash_signature(traces[0]))
    assert np.array_equal(permutations(128, 1), MinHash(num_perm=128, seed=1).permutations)
    assert np.array_equal(permutations(64, 7), MinHash(num_perm=64, seed=7).permutations)


def test_words_are_case_folded_and_split_on_punctuation():
    assert np.array_equal(word_hashes("Let $f(x)=1$, so F(X)"), word_hashes("let f x 1 so f x"))
    assert len(word_hashes("café naïve x_1 20!")) == 5
    assert word_hashes("").size == 0 and shingle_hashes("...").size == 0


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


def test_survivor_is_the_first_in_preference_order(traces):
    copy, _ = edit_to(traces[1], 0.9, 7)
    rows = [
        {"id": "a", "prompt_id": "p1", "reasoning": traces[1], "completion_tokens": 2900},
        {"id": "b", "prompt_id": "p1", "reasoning": copy, "completion_tokens": 2800},
        {"id": "c", "prompt_id": "p2", "reasoning": traces[2], "completion_tokens": 1400},
        {"id": "d", "prompt_id": "p3", "reasoning": traces[1], "completion_tokens": 2800},
    ]
    for shuffled in (rows, rows[::-1], [rows[2], rows[0], rows[3], rows[1]]):
        ordered = sorted(shuffled, key=preference_key)
        assert [r["id"] for r in ordered] == ["c", "b", "d", "a"]
        reasons = dict(zip([r["id"] for r in ordered], dedup_rows(ordered), strict=True))
        assert reasons["c"] is None and reasons["b"] is None
        assert reasons["d"].startswith("near_duplicate: reasoning ~ b (jaccard ~0.")
        assert reasons["a"] == "exact_duplicate: reasoning equals d" or reasons["a"].startswith(
            "near_duplicate"
        )


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


def test_exact_and_near_dups_in_dedup_rows(traces):
    rows = [{"id": f"r{i}", "prompt_id": f"p{i}", "reasoning": t} for i, t in enumerate(traces)]
    rows += [
        {"id": "dup", "prompt_id": "p9", "reasoning": traces[3].lower()},
        {"id": "none", "prompt_id": "p9"},
    ]
    reasons = dedup_rows(rows)
    assert reasons == [None] * 5 + ["exact_duplicate: reasoning equals r3", None]
    assert dedup_rows(rows, DedupConfig(exact=False))[5].startswith(
        "near_duplicate: reasoning ~ r3 (jaccard ~1.00)"
    )
    assert dedup_rows(rows, DedupConfig(exact=False, near=False)) == [None] * 7


def test_scope_prompt_only_compares_samples_of_one_prompt(traces):
    rows = [
        {"id": "a", "prompt_id": "p1", "reasoning": traces[0]},
        {"id": "b", "prompt_id": "p2", "reasoning": traces[0]},
        {"id": "c", "prompt_id": "p1", "reasoning": edit_to(traces[0], 0.9, 1)[0]},
    ]
    assert dedup_rows(rows, DedupConfig(scope="prompt", exact=False))[1:] == [None, dedup_rows(rows)[2]]
    assert dedup_rows(rows, DedupConfig(scope="prompt"))[2].startswith("near_duplicate: reasoning ~ a")


def test_duplicate_prompts_lose_all_their_samples(traces):
    problem = (
        "Find the remainder when $9 \\times 99 \\times \\cdots$ is divided by $1000$. Show every step of it."
    )
    rows = [
        {"id": "a", "prompt_id": "p1", "problem": problem, "reasoning": traces[0]},
        {"id": "b", "prompt_id": "p2", "problem": problem + " ", "reasoning": traces[1]},
        {"id": "c", "prompt_id": "p2", "problem": problem + " ", "reasoning": traces[2]},
    ]
    assert dedup_rows(rows) == [None, None, None]
    assert (
        dedup_rows(rows, DedupConfig(prompts=True))[1:]
        == ["near_duplicate_prompt: problem of p2 duplicates p1"] * 2
    )


def test_worker_processes_give_the_same_reasons(traces):
    rows = [{"id": f"r{i}", "prompt_id": "p", "reasoning": t} for i, t in enumerate(traces)]
    rows += [
        {"id": f"c{i}", "prompt_id": "q", "reasoning": edit_to(t, 0.85, i)[0]} for i, t in enumerate(traces)
    ]
    assert (
        dedup_rows(rows, processes=2, chunk=3)
        == dedup_rows(rows)
        == [None] * 5
        + [
            f"near_duplicate: reasoning ~ r{i} (jaccard ~{(minhash_signature(rows[5 + i]['reasoning']) == minhash_signature(traces[i])).mean():.2f})"
            for i in range(5)
        ]
    )


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
