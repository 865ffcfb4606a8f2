"""MinHash near-dedup quality and speed on a synthetic corpus of 8-30 KB math traces.

    .venv/bin/python benchmarks/dedup_quality.py            # 20,000 traces, ~3 min on 2 cores
    .venv/bin/python benchmarks/dedup_quality.py --n 4000   # quicker

Corpus: `benchmarks/corpus.py` (real s1K traces, word-level edits), with planted near
duplicates at word 5-gram Jaccard ~0.85 and related-but-distinct pairs at ~0.5. Measures
recall on the planted pairs (target >= 0.95), false positives among distinct traces (target
<= 1%), and docs/s of signatures at 1 and 2 processes next to the plain reference (datasketch
`MinHash.update_batch` per document with Python shingling and its default SHA1, one LSH), and
of the filter's whole dedup on the stage's own path (`plan_of_rows`: the per-row features as the
first pass computes them, then `make_plan`: exact + near). Writes `benchmarks/results/dedup_quality.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.corpus import build_corpus
from distill.filter.config import FilterConfig, SelectConfig
from distill.filter.dedup import DedupConfig, NearDedup, minhash_signatures
from distill.filter.plan import plan_of_rows

RESULTS = Path(__file__).resolve().parent / "results" / "dedup_quality.json"


def reference_signatures(texts: list[str], ngram: int = 5, num_perm: int = 128) -> list[np.ndarray]:
    """The plain way: Python shingles, datasketch's SHA1 hashing, one MinHash per document."""
    from datasketch import MinHash

    out = []
    for text in texts:
        words = text.lower().split()
        m = MinHash(num_perm=num_perm)
        m.update_batch(
            [" ".join(words[i : i + ngram]).encode("utf-8") for i in range(len(words) - ngram + 1)]
        )
        out.append(m.hashvalues)
    return out


def reference_pipeline(texts: list[str]) -> None:
    """The plain stage: `reference_signatures`, then query + insert into one MinHashLSH."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, values in enumerate(reference_signatures(texts)):
        sketch = MinHash(hashvalues=values, scheme="affine32")
        if not lsh.query(sketch):
            lsh.insert(i, sketch)


class Rate:
    """docs/s by wall clock, and per CPU-second (this process + its finished workers): on a shared
    machine the wall clock measures the neighbours, CPU time mostly our own work."""

    def __init__(self, docs: int) -> None:
        self.docs = docs

    def __enter__(self) -> Rate:
        self.t0 = (time.perf_counter(), os.times())
        return self

    def __exit__(self, *exc: object) -> None:
        (w0, c0), c1 = self.t0, os.times()
        cpu = sum(c1[:4]) - sum(c0[:4])  # user + system, self + children
        self.wall, self.cpu = self.docs / (time.perf_counter() - w0), self.docs / max(cpu, 1e-9)

    def as_dict(self) -> dict[str, int]:
        return {"wall_docs_per_s": round(self.wall), "docs_per_cpu_s": round(self.cpu)}


def run_parallel(fn, texts: list[str], processes: int, chunk: int = 256) -> Rate:
    """fn over texts in `processes` workers (pool start-up and transfers included)."""
    parts = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    with Rate(len(texts)) as rate:
        if processes == 1:
            for part in parts:
                fn(part)
        else:
            with ProcessPoolExecutor(processes) as pool:
                list(pool.map(fn, parts))
    return rate


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def plain_lsh_matches(rows: list[dict], sigs: np.ndarray, threshold: float = 0.8) -> dict[str, str | None]:
    """The plain index for comparison: MinHashLSH(threshold) with datasketch's own band choice and
    no confirmation, first candidate in insertion order wins (same sketches as ours)."""
    from datasketch import MinHash, MinHashLSH

    lsh, order, matched = MinHashLSH(threshold=threshold, num_perm=sigs.shape[1]), {}, {}
    for i, (row, sig) in enumerate(zip(rows, sigs, strict=True)):
        sketch = MinHash(seed=1, hashvalues=sig, scheme="affine32")
        found = lsh.query(sketch)
        matched[row["id"]] = min(found, key=order.__getitem__) if found else None
        if not found:
            lsh.insert(row["id"], sketch)
            order[row["id"]] = i
    return matched


def score(matched: dict[str, str | None], corpus) -> dict:
    order = {key: i for i, key in enumerate(matched)}

    def caught(a: str, b: str) -> bool:  # the later of the pair matched the earlier one
        first, later = sorted((a, b), key=order.__getitem__)
        return matched[later] is not None and matched[later] in (first, matched[first])

    planted = corpus.near_pairs
    in_pair = {x for a, b, _ in planted for x in (a, b)}
    distinct = [i for i in matched if i not in in_pair]
    hits = [caught(a, b) for a, b, _ in planted]
    by_bin: dict[str, list[bool]] = {}
    for (_, _, j), hit in zip(planted, hits, strict=True):
        by_bin.setdefault(f"{np.floor(j * 50) / 50:.2f}", []).append(hit)
    return {
        "planted_pairs": len(planted),
        "recall": round(float(np.mean(hits)), 4),
        "recall_by_jaccard": {k: [round(float(np.mean(v)), 3), len(v)] for k, v in sorted(by_bin.items())},
        "false_positive_rate": round(sum(matched[i] is not None for i in distinct) / len(distinct), 5),
        "distinct_rows": len(distinct),
        "related_pairs_merged": round(float(np.mean([caught(a, b) for a, b, _ in corpus.related_pairs])), 4),
    }


def quality(rows: list[dict], sigs: np.ndarray, corpus, cfg: DedupConfig) -> dict:
    near = NearDedup(cfg)
    with Rate(len(rows)) as index_rate:
        matched = {
            row["id"]: near.add_signature(row["id"], sig, row["prompt_id"])
            for row, sig in zip(rows, sigs, strict=True)
        }
    sig_of = {row["id"]: s for row, s in zip(rows, sigs, strict=True)}
    est_err = [abs(float((sig_of[a] == sig_of[b]).mean()) - j) for a, b, j in corpus.near_pairs]
    plain = plain_lsh_matches(rows, sigs)
    return {
        **score(matched, corpus),
        "minhash_estimate_mean_abs_error": round(float(np.mean(est_err)), 4),
        "lsh_query_insert": index_rate.as_dict(),
        "plain_minhashlsh_threshold_0.8_no_confirmation": score(plain, corpus),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-docs", type=int, default=1_000, help="Docs for the slow reference.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cfg = DedupConfig()
    load = {"before": loadavg()}

    start = time.perf_counter()
    corpus = build_corpus(args.n, seed=args.seed)
    build_s = time.perf_counter() - start
    rows = corpus.rows
    texts = [row["reasoning"] for row in rows]
    sizes = np.array([len(t.encode("utf-8")) for t in texts]) / 1000
    near_j = np.array([j for _, _, j in corpus.near_pairs])
    rel_j = np.array([j for _, _, j in corpus.related_pairs])

    with Rate(len(texts)) as ours_1:
        sigs = minhash_signatures(texts, cfg.ngram, cfg.num_perm, cfg.seed)
    ours_2 = run_parallel(minhash_signatures, texts, 2)
    ref_texts = texts[: args.reference_docs]
    ref_1 = run_parallel(reference_signatures, ref_texts, 1)
    ref_2 = run_parallel(reference_signatures, ref_texts, 2, chunk=64)
    with Rate(len(ref_texts)) as ref_stage:
        reference_pipeline(ref_texts)
    load["after_signatures"] = loadavg()

    result_quality = quality(rows, sigs, corpus, cfg)
    stage = {}
    stage_cfg = FilterConfig(dedup=cfg, select=SelectConfig(max_per_prompt="all"))  # dedup alone
    for processes in (1, 2):
        with Rate(len(rows)) as rate:
            _, plan = plan_of_rows(rows, stage_cfg, processes=processes)
        stage[f"plan_dedup_{processes}proc"] = rate.as_dict()
    stage["dropped"] = len(plan.decisions)
    stage["reference_pipeline_1proc"] = ref_stage.as_dict()
    load["after"] = loadavg()

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=RESULTS.parents[2]
    )
    import datasketch

    result = {
        "corpus": {
            "traces": len(rows),
            "build_s": round(build_s, 1),
            "kb_min_mean_max": [
                round(float(sizes.min()), 1),
                round(float(sizes.mean()), 1),
                round(float(sizes.max()), 1),
            ],
            "near_pair_jaccard_min_mean_max": [
                round(float(x), 3) for x in (near_j.min(), near_j.mean(), near_j.max())
            ],
            "related_pair_jaccard_min_mean_max": [
                round(float(x), 3) for x in (rel_j.min(), rel_j.mean(), rel_j.max())
            ],
        },
        "config": cfg.model_dump(),
        "quality": result_quality,
        "targets": {
            "recall": ">= 0.95",
            "false_positive_rate": "<= 0.01",
            "stage_docs_per_s_2_cores": ">= 1000",
        },
        "signatures": {
            "numpy_1proc": ours_1.as_dict(),
            "numpy_2proc": ours_2.as_dict(),
            "reference_sha1_update_batch_1proc": ref_1.as_dict(),
            "reference_sha1_update_batch_2proc": ref_2.as_dict(),
            "reference_docs": len(ref_texts),
            "speedup_per_cpu_s": round(ours_1.cpu / ref_1.cpu, 1),
        },
        "stage": stage,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1_5_15": load,
            "note": "2 cores shared with other work: timings are noisy",
            "python": platform.python_version(),
            "numpy": np.__version__,
            "datasketch": datasketch.__version__,
            "git_commit": commit.stdout.strip() or None,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
