"""Synthetic trace corpora made from the five real s1K traces, for the filter benchmarks.

    from benchmarks.corpus import build_corpus
    corpus = build_corpus(20_000, seed=0)   # ~1 min; corpus.rows are TRACE_SCHEMA dicts

Every row is a math trace of 8-30 KB: reasoning = random paragraphs of the real Gemini
trajectories, content = a real attempt, both with word-level edits (25% of words: numbers get
random digits, words random words of the same texts) so that two base traces share almost no
word 5-gram (Jaccard < 0.05) while reading like the originals. Planted on top:
- near duplicates: copies of a base trace's reasoning edited to a word 5-gram Jaccard of about
  0.85 (half as another sample of the same prompt, half under another prompt);
- related pairs: copies edited to Jaccard about 0.5, distinct traces that must both be kept.
Jaccards are exact, on the shingles of `distill.text.shingle_hashes`. Each content ends
in one `\\boxed{}`: the gold answer, or a wrong one for `wrong_fraction` of rows (`correct`).
Every row passes the readability filters with their defaults.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from distill.schema import prompt_id_for, sample_id_for
from distill.text import shingle_hashes

SOURCE = Path(__file__).resolve().parents[1] / "data" / "reasoning_traces_s1k_sample.parquet"
TEACHER = "synthetic/s1k-gemini"
SAMPLING = {"temperature": 0.6, "top_p": 0.95}
INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
_DIGIT = re.compile(r"\d")
_SEP = re.compile(r"([ \n])")


@dataclass
class Corpus:
    rows: list[dict]  # TRACE_SCHEMA rows, in a random order
    near_pairs: list[tuple[str, str, float]] = field(default_factory=list)  # (original id, copy id, J)
    related_pairs: list[tuple[str, str, float]] = field(default_factory=list)  # (base id, variant id, J)
    correct: dict[str, bool] = field(default_factory=dict)  # id -> boxed answer == gold


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    """Exact Jaccard of the word n-gram shingle sets (as hashed by the dedup stage)."""
    sa, sb = np.unique(shingle_hashes(a, ngram)), np.unique(shingle_hashes(b, ngram))
    inter = np.intersect1d(sa, sb, assume_unique=True).size
    return inter / max(1, sa.size + sb.size - inter)


class _Editor:
    def __init__(self, texts: list[str], rng: random.Random) -> None:
        self.rng = rng
        self.vocab = sorted({w for t in texts for w in t.split() if w.isalpha()})

    def token(self, tok: str) -> str:
        if tok.isalpha():
            return self.rng.choice(self.vocab)
        if _DIGIT.search(tok):
            return _DIGIT.sub(lambda _: str(self.rng.randrange(10)), tok)
        return tok + self.rng.choice(self.vocab)[:3]  # symbols: glue a fragment on

    def edit(self, text: str, p: float) -> str:
        """Replace each token (split on spaces and newlines) with probability p."""
        toks = _SEP.split(text)  # tokens at even positions, separators at odd ones
        count = (len(toks) + 1) // 2
        k = int(p * count) + (self.rng.random() < (p * count) % 1)
        for i in self.rng.sample(range(count), min(k, count)):
            if toks[2 * i]:
                toks[2 * i] = self.token(toks[2 * i])
        return "".join(toks)

    def edit_to(self, text: str, target: float, tries: int = 6) -> tuple[str, float]:
        """An edit of `text` whose Jaccard with it is close to `target` (a few secant steps)."""
        p = 1 - (2 * target / (1 + target)) ** (1 / 5)
        for _ in range(tries):
            out = self.edit(text, p)
            j = jaccard(text, out)
            if abs(j - target) < 0.02:
                break
            p = min(0.9, p * (1 - target) / max(1e-3, 1 - j))
        return out, j


def _load(source: Path) -> tuple[list[str], list[str], list[str]]:
    rows = pq.read_table(source).to_pylist()
    paragraphs = [
        p.strip() for r in rows for p in re.split(r"\n\s*\n", r["gemini_thinking_trajectory"]) if p.strip()
    ]
    attempts = [r["gemini_attempt"].rsplit("Final Answer:", 1)[0].rstrip() for r in rows]
    return [r["question"] for r in rows], paragraphs, attempts


def _row(problem: str, gold: str, index: int, reasoning: str, content: str) -> dict:
    pid = prompt_id_for(problem)
    completion = f"<think>\n{reasoning}\n</think>\n\n{content}"
    prompt = problem + INSTRUCTION
    return {
        "id": sample_id_for(pid, TEACHER, SAMPLING, index),
        "prompt_id": pid,
        "sample_index": index,
        "problem": problem,
        "answer": gold,
        "tests": None,
        "domain": "math",
        "source": "s1k-synthetic",
        "prompt": prompt,
        "reasoning": reasoning,
        "content": content,
        "completion": completion,
        "finish_reason": "stop",
        "prompt_tokens": len(prompt) // 4,
        "completion_tokens": len(completion) // 4,
        "teacher": TEACHER,
        "sampling": json.dumps(SAMPLING, sort_keys=True),
    }


def build_corpus(
    n: int = 20_000,
    *,
    seed: int = 0,
    near_fraction: float = 0.1,
    related_fraction: float = 0.05,
    near_jaccard: float = 0.85,
    related_jaccard: float = 0.5,
    samples_per_prompt: int = 4,
    min_chars: int = 8_000,
    max_chars: int = 30_000,
    wrong_fraction: float = 0.3,
    edit_rate: float = 0.25,
    source: Path = SOURCE,
) -> Corpus:
    rng = random.Random(seed)
    questions, paragraphs, attempts = _load(source)
    ed = _Editor([*paragraphs, *attempts], rng)
    n_near, n_related = int(n * near_fraction), int(n * related_fraction)
    n_base = n - n_near - n_related
    corpus = Corpus(rows=[])
    prompts: list[tuple[str, str]] = []  # (problem, gold)
    next_index: dict[str, int] = {}

    def add(problem: str, gold: str, reasoning: str, content: str, right: bool) -> dict:
        pid = prompt_id_for(problem)
        index = next_index[pid] = next_index.get(pid, -1) + 1
        answer = gold if right else str(int(gold) + rng.randint(1, 99))
        row = _row(
            problem,
            gold,
            index,
            reasoning,
            f"{content}\n\nFinal Answer: The final answer is $\\boxed{{{answer}}}$",
        )
        corpus.rows.append(row)
        corpus.correct[row["id"]] = right
        return row

    base: list[dict] = []
    for i in range(n_base):
        if i % samples_per_prompt == 0:
            problem = ed.edit(rng.choice(questions), edit_rate) + f" (variant {len(prompts)})"
            prompts.append((problem, str(rng.randint(2, 10**6))))
        problem, gold = prompts[-1]
        target, parts, size = rng.randint(min_chars, max_chars), [], 0
        while size < target:
            parts.append(ed.edit(rng.choice(paragraphs), edit_rate))
            size += len(parts[-1]) + 2
        reasoning = "\n\n".join(parts)[:max_chars].rstrip()
        content = ed.edit(rng.choice(attempts), edit_rate)
        base.append(add(problem, gold, reasoning, content, rng.random() >= wrong_fraction))

    for k, (count, target, pairs) in enumerate(
        ((n_near, near_jaccard, corpus.near_pairs), (n_related, related_jaccard, corpus.related_pairs))
    ):
        for orig in rng.sample(base, count):
            text, j = ed.edit_to(orig["reasoning"], target)
            problem, gold = (
                (orig["problem"], orig["answer"]) if k or rng.random() < 0.5 else rng.choice(prompts)
            )
            row = add(
                problem,
                gold,
                text,
                orig["content"].rsplit("\n\nFinal Answer:", 1)[0],
                rng.random() >= wrong_fraction,
            )
            pairs.append((orig["id"], row["id"], j))
    rng.shuffle(corpus.rows)
    return corpus
