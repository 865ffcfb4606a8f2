"""Decontamination against the bundled GSM8K test split and HumanEval."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.errors import UserError
from distill.filter.decontam import DecontamConfig, Decontaminator, Match, PromptContamination, read_questions
from distill.text import normalize_words

DATA = Path(__file__).resolve().parents[2] / "data"
GSM8K = DATA / "gsm8k_test.jsonl"
S1K = DATA / "reasoning_traces_s1k_sample.parquet"
# GSM8K test row 0 reworded; it keeps one 8-gram: "she sells the remainder at the farmers' market".
JANET = (
    "Every day Janet collects 16 duck eggs. Three go into her breakfast and four into muffins for "
    "friends. She sells the remainder at the farmers market daily, at $2 each. What does she earn?"
)


@pytest.fixture(scope="module")
def gsm8k() -> Decontaminator:
    return Decontaminator([GSM8K])


@pytest.fixture
def other_bench(tmp_path) -> Path:
    path = tmp_path / "aime_like.parquet"
    problems = [
        "Find the number of ordered pairs of positive integers whose product is exactly twenty factorial."
    ]
    pq.write_table(pa.table({"problem": problems, "id": ["aime-7"]}), path)
    return path


def test_a_reworded_gsm8k_question_is_caught_and_attributed(gsm8k, other_bench):
    assert len(gsm8k) == 1319
    match = gsm8k.check(JANET)
    assert match == Match("gsm8k_test.jsonl", "0", "she sells the remainder at the farmers market")
    assert gsm8k.reason(JANET) == (
        "contaminated: shares 'she sells the remainder at the farmers market' with gsm8k_test.jsonl row 0"
    )
    both = Decontaminator([other_bench, GSM8K])
    assert both.check(JANET).benchmark == "gsm8k_test.jsonl"
    hit = both.check("How many ordered pairs of positive integers have product exactly twenty factorial?")
    assert hit is None  # 7 shared words at most
    hit = both.check("Please find the number of ordered pairs of positive integers whose product is 20!.")
    assert (hit.benchmark, hit.row) == ("aime_like.parquet", "aime-7")


def test_every_gsm8k_question_matches_itself_and_unrelated_prompts_pass(gsm8k):
    questions = [json.loads(line)["question"] for line in GSM8K.read_text().splitlines()]
    for i in (0, 1, 2, 500, 1318):
        if len(normalize_words(questions[i])) >= 8:
            assert gsm8k.check("Solve: " + questions[i].upper()).benchmark == "gsm8k_test.jsonl"
    for row in pq.read_table(S1K).to_pylist():
        assert gsm8k.check(row["question"]) is None
    assert gsm8k.check("Janet's ducks lay eggs. She sells them at the market.") is None
    assert gsm8k.check("") is None


def test_normalisation_ignores_case_punctuation_and_quotes(gsm8k):
    assert normalize_words("Janet’s DUCKS, lay—16 eggs!") == ["janet", "s", "ducks", "lay", "16", "eggs"]
    assert gsm8k.check("JANET'S ducks... lay 16 eggs per day!! She eats three").row == "0"


def test_humaneval_gz_with_task_ids():
    he = Decontaminator([DATA / "humaneval.jsonl.gz"])
    assert len(he) == 164
    prompt = "Write has_close_elements: check if in given list of numbers, are any two numbers closer to each other"
    assert (he.check(prompt).benchmark, he.check(prompt).row) == ("humaneval.jsonl.gz", "HumanEval/0")


def test_columns_ngram_size_and_errors(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(
        json.dumps({"prompt": "p", "query": "Compute the sum of the first ten odd numbers."}) + "\n"
    )
    assert list(read_questions(path)) == [("0", "p")]  # auto-detected column: prompt
    assert next(read_questions(path, "query"))[1].startswith("Compute")
    small = Decontaminator([path], ngram=4, column="query")
    assert small.check("what is the first ten odd numbers").ngram == "the first ten odd"
    assert Decontaminator([path], ngram=8, column="query").check("what is the first ten odd numbers") is None
    with pytest.raises(UserError, match="no question column"):
        Decontaminator([path], column="missing")
    with pytest.raises(UserError, match="not found"):
        Decontaminator([tmp_path / "nope.jsonl"])


def test_short_benchmark_questions_are_skipped(tmp_path):
    path = tmp_path / "short.jsonl"
    path.write_text(json.dumps({"question": "What is 2+2?"}) + "\n")
    assert len(Decontaminator([path])) == 0 and Decontaminator([path]).check("What is 2+2?") is None


def test_from_config_and_pickling(gsm8k):
    cfg = DecontamConfig(benchmarks=[str(GSM8K)])
    assert cfg.ngram == 8 and cfg.field == "problem"
    assert Decontaminator.from_config(cfg).check(JANET).row == "0"
    assert pickle.loads(pickle.dumps(gsm8k)).check(JANET).row == "0"  # usable in worker processes
    with pytest.raises(ValueError):
        DecontamConfig(ngrams=8)


def test_prompt_contamination_past_its_cache_limit(monkeypatch):
    """A run with more distinct prompts than the cache holds (100,000: a 1M-row run) clears it and
    checks the batch's texts again, those it had remembered too (they were a KeyError)."""
    monkeypatch.setattr(PromptContamination, "CACHE_LIMIT", 3)
    check = PromptContamination(DecontamConfig(benchmarks=[str(GSM8K)]))
    rows = [{"prompt_id": f"p{i}", "problem": text} for i, text in enumerate([JANET, "a b", "c d"])]
    assert [r is not None for r in check.reasons(rows)] == [True, False, False]
    more = [*rows, {"prompt_id": "p3", "problem": "e f"}]  # 3 remembered + 1 new > 3: cleared
    assert [r is not None for r in check.reasons(more)] == [True, False, False, False]
