"""End-to-end throughput of `distill filter` on math traces, next to a plain reference pipeline.

    .venv/bin/python benchmarks/filter_throughput.py                      # 20k and 100k rows
    .venv/bin/python benchmarks/filter_throughput.py --sizes 4000 --reference-rows 500   # quick

Corpus (`benchmarks/corpus.py`, built once and cached under --workdir): math traces of 8-30 KB made
from the real s1K traces in `data/reasoning_traces_s1k_sample.parquet` with word-level edits,
planted near duplicates at word 5-gram Jaccard ~0.85 and related pairs at ~0.5. On top, here:
GSM8K test golds (a tenth of the prompts a `\\frac{g}{8}` gold, a fifth one of 16 bare LaTeX golds
in the forms of MATH / NuminaMath: `\\dfrac{207}{64}`, `(6,1)`, `x^2-2x+2`, intervals, matrices, ...), the final `\\boxed{}` of each
content rewritten as a right answer in one of several spellings (`1,000`, `\\$18`, `18.00`,
`\\text{18}`, `\\frac{36}{2}`, ...) or a wrong one (70/30), and 2% of traces cut off inside the
thinking. Written in the layout of `distill generate` (`data/train-KKKKK-of-NNNNN.parquet` shards
of --shard-rows rows, `manifest.json`) in TRACE_SCHEMA.

Measured per size: `distill filter DIR -o OUT` (the CLI, default config, decontamination against
GSM8K test) in a subprocess: wall clock, CPU seconds (user + sys) of the whole process tree
(this process is made a child subreaper so that every descendant, the forkserver's math workers
included, is reaped here and counted in RUSAGE_CHILDREN), peak RSS of the tree (sum over live
processes, sampled with psutil every 0.25 s: at 0.1 s the sampler costs ~2% of a core, taken
from the filter on its two busy cores, not from the one-core reference) and of the largest
single process. Quality from the filter's own output: near-duplicate recall on the planted pairs whose both rows reach the dedup
stage (passed verification and readability), false positives among the other rows that reach it.

The reference, in the same run on --reference-rows rows (default 20,000: the 20k-row comparison
is at the same rows; ~90 s), between the first and the second distill run of the smallest size
(so that the runs compared straddle it in time: the host drifts over minutes): one process that reads the
same shards, runs plain math-verify sequentially on every row (the gold wrapped in `\\boxed{}`, boxed first), the
same readability checks (`check_readability`), exact dedup, datasketch `MinHash.update_batch` per
document with Python word shingles (SHA1), one `MinHashLSH(threshold=0.8)`, keeps the shortest
passing row per prompt and writes sft/rejects Parquet (zstd, as the filter). A second reference
run on --reference-small rows splits its start-up (imports) from its per-row cost, for the
comparison at other sizes (the reference extrapolated: start-up + rows x per-row time).

Writes `benchmarks/results/filter_throughput.json` and prints a summary. The machine has 2 cores
shared with other work: wall-clock figures depend on the load (recorded before and after each
run) and on the other tenants of the host: the same run varies by +-15% from one hour to the
next, in CPU seconds too. Compare figures from one run, or repeat it: distill runs --repeat
times per size (default 3) and the run of median wall time is reported (quality figures from the
outputs of the last run; the filter is deterministic). To measure another version of the filter
against the same corpus, put its checkout first on the path and run from outside this repository:
`cd /tmp && PYTHONPATH=/path/to/other/checkout /path/to/.venv/bin/python
/path/to/this/benchmarks/filter_throughput.py` (the `distill` CLI and the reference then import it).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # after PYTHONPATH: a baseline copy of distill can be measured

RESULTS = REPO / "benchmarks" / "results" / "filter_throughput.json"
GSM8K = REPO / "data" / "gsm8k_test.jsonl"
CHUNK_ROWS = 20_000  # corpus built in independent chunks of this many rows (in parallel)
CORPUS_VERSION = 3  # 3: a fifth of the prompts with bare LaTeX golds


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- corpus ------------------------------------------------------------------------------------


def _gsm8k_golds() -> list[int]:
    """GSM8K test final answers >= 2 (so that every wrong spelling below differs from the gold)."""
    golds = [int(json.loads(line)["answer"].split("####")[-1].strip().replace(",", ""))
             for line in GSM8K.read_text().splitlines() if line.strip()]  # fmt: skip
    return [g for g in golds if g >= 2]


# Bare LaTeX golds as MATH / NuminaMath / OpenR1-Math store them, with right and wrong boxed answers
# (each checked against plain math-verify with the gold wrapped in \\boxed{}).
LATEX_GOLDS = [
    ("\\dfrac{207}{64}", ["\\frac{207}{64}", "3.234375", "\\dfrac{207}{64}"], ["\\frac{207}{46}", "3.2"]),
    ("x^2-2x+2", ["x^2 - 2x + 2", "(x-1)^2+1"], ["x^2+2x+2", "x^2-2x"]),
    ("(6,1)", ["(6, 1)", "(6,1)"], ["(1,6)", "6"]),
    ("\\sin^2t", ["\\sin^2 t", "\\sin^2t"], ["\\cos^2t", "\\sin t"]),
    (
        "\\frac{3+2\\sqrt{3}}{3}",
        ["1+\\frac{2\\sqrt{3}}{3}", "\\frac{3+2\\sqrt{3}}{3}"],
        ["\\frac{3+\\sqrt{3}}{3}", "2"],
    ),
    ("(-\\infty,1)\\cup(1,\\infty)", ["(-\\infty, 1) \\cup (1, \\infty)"], ["(-\\infty,1]", "(1,\\infty)"]),
    (
        "(\\frac{2}{3},1)\\cup(7,\\infty)",
        ["(\\frac23,1)\\cup(7,\\infty)"],
        ["(\\frac{2}{3},1)", "\\frac{2}{3}"],
    ),
    ("2\\sqrt{3}", ["\\sqrt{12}", "2\\sqrt3"], ["\\sqrt{3}", "3\\sqrt{2}"]),
    ("3+4i", ["4i+3", "3 + 4i"], ["3-4i", "4+3i"]),
    (
        "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
        ["\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"],
        ["\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}"],
    ),
    ("\\text{Monday}", ["\\text{Monday}", "Monday"], ["\\text{Tuesday}"]),
    ("B", ["B", "\\text{(B)}"], ["C", "D"]),
    ("25\\%", ["25\\%", "0.25"], ["20\\%", "2.5"]),
    ("\\{1, 2, 3\\}", ["\\{3,2,1\\}", "1, 2, 3"], ["\\{1,2\\}"]),
    ("y = 2x + 1", ["y=1+2x"], ["y = 2x - 1"]),
    ("\\frac{\\pi}{3}", ["\\pi/3", "\\frac{\\pi}{3}"], ["\\frac{\\pi}{6}"]),
]


def _answers(g: int, fraction_gold: bool) -> tuple[list[str], list[str]]:
    """(right, wrong) spellings of a boxed answer to gold g (or to g/8; x/8 prints exactly)."""
    if fraction_gold:
        right = [f"\\frac{{{g}}}{{8}}", str(g / 8), f"\\dfrac{{{g}}}{{8}}"]
        return right, [f"\\frac{{{g}}}{{9}}", str((g + 1) / 8), str(g)]
    right = [str(g)] * 6 + [f"{g:,}", f"\\${g}", f"{g}.00", f"\\text{{{g}}}", f"\\frac{{{2 * g}}}{{2}}",
                            f"{g} \\text{{ dollars}}"]  # fmt: skip
    wrong = [str(g + 1), str(g - 1), str(2 * g), f"{g / 2:.1f}", f"\\frac{{{g}}}{{3}}", str(g + 10)]
    return right, wrong


def _build_chunk(args: tuple) -> dict:
    """Build `n` rows (seeded), rewrite golds and answers, seal them as shards k, k+C, k+2C..."""
    root, chunk, chunks, n, seed, shard_rows, num_shards, identity, chars = args
    from benchmarks.corpus import build_corpus
    from distill.schema import TRACE_SCHEMA, to_table
    from distill.shards import ShardStore

    corpus = build_corpus(n, seed=seed, min_chars=chars[0], max_chars=chars[1])
    rng = random.Random(f"answers:{seed}")
    golds = _gsm8k_golds()
    gold_of: dict[str, tuple[int, bool, int | None]] = {}
    truth = {"near_pairs": corpus.near_pairs, "related_pairs": corpus.related_pairs, "correct": {},
             "truncated": []}  # fmt: skip
    for row in corpus.rows:
        pid = row["prompt_id"]
        if pid not in gold_of:
            kind = rng.random()  # a tenth `\\frac{g}{8}`, a fifth bare LaTeX, the rest GSM8K integers
            latex = rng.randrange(len(LATEX_GOLDS)) if 0.1 <= kind < 0.3 else None
            gold_of[pid] = (rng.choice(golds), kind < 0.1, latex)
        g, frac, latex = gold_of[pid]
        if latex is not None:
            row["answer"], right, wrong = LATEX_GOLDS[latex]
        else:
            row["answer"] = f"\\frac{{{g}}}{{8}}" if frac else str(g)
            right, wrong = _answers(g, frac)
        ok = corpus.correct[row["id"]]
        answer = rng.choice(right if ok else wrong)
        body = row["content"].rsplit("\\boxed{", 1)[0]
        row["content"] = f"{body}\\boxed{{{answer}}}$"
        if rng.random() < 0.02:  # cut off inside the thinking: no content, verify fails
            row["content"], row["finish_reason"] = None, "length"
            row["completion"] = f"<think>\n{row['reasoning']}"
            truth["truncated"].append(row["id"])
        else:
            row["completion"] = f"<think>\n{row['reasoning']}\n</think>\n\n{row['content']}"
        row["completion_tokens"] = len(row["completion"]) // 4
        truth["correct"][row["id"]] = ok
    store = ShardStore(root, identity, num_shards, worker_index=chunk, num_workers=chunks)
    # opened by the caller: `open()` here would delete the other chunks' in-flight temporary files
    mine = list(range(chunk, num_shards, chunks))
    for j, k in enumerate(mine):
        part = corpus.rows[j * shard_rows : (j + 1) * shard_rows]
        store.seal(k, to_table(part, TRACE_SCHEMA), {"rows_generated": len(part)})
    return truth


DEFAULT_CHARS = (8_000, 30_000)  # reasoning characters per trace (`build_corpus`'s default)


def ensure_corpus(
    workdir: Path, n: int, seed: int, shard_rows: int, rebuild: bool, chars: tuple[int, int] = DEFAULT_CHARS
) -> tuple[Path, dict]:
    """The corpus folder for (n, seed, shard_rows, chars), built if missing; (folder, ground truth)."""
    tail = "" if chars == DEFAULT_CHARS else f"-c{chars[0]}-{chars[1]}"
    root = workdir / f"corpus-v{CORPUS_VERSION}-n{n}-s{seed}-r{shard_rows}{tail}"
    truth_path = root / "truth.json"
    if truth_path.exists() and (root / "manifest.json").exists() and not rebuild:
        return root, json.loads(truth_path.read_text())
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    chunks = max(1, -(-n // CHUNK_ROWS))
    sizes = [n // chunks + (c < n % chunks) for c in range(chunks)]
    if any(s % shard_rows for s in sizes[:-1]):
        raise SystemExit(f"--shard-rows {shard_rows} must divide the chunk size {sizes[0]}")
    num_shards = sum(-(-s // shard_rows) for s in sizes)
    identity = {"stage": "generate", "benchmark": "filter_throughput", "n": n, "seed": seed}
    jobs = [(root, c, chunks, sizes[c], seed * 1000 + c, shard_rows, num_shards, identity, chars)
            for c in range(chunks)]  # fmt: skip
    from distill.shards import ShardStore, merge_manifests

    for c in range(chunks):
        ShardStore(root, identity, num_shards, worker_index=c, num_workers=chunks).open()
    start = time.perf_counter()
    if chunks == 1:
        parts = [_build_chunk(jobs[0])]
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(chunks, os.cpu_count() or 1)) as pool:
            parts = list(pool.map(_build_chunk, jobs))
    if merge_manifests(root) is None:
        raise SystemExit(f"{root}: corpus shards missing")
    truth: dict = {"near_pairs": [], "related_pairs": [], "correct": {}, "truncated": []}
    for part in parts:
        for key in ("near_pairs", "related_pairs", "truncated"):
            truth[key] += part[key]
        truth["correct"].update(part["correct"])
    if len(truth["correct"]) != n:
        raise SystemExit("duplicate row ids across corpus chunks")
    truth["build_s"] = round(time.perf_counter() - start, 1)
    truth_path.write_text(json.dumps(truth))
    return root, truth


# --- measuring a process tree --------------------------------------------------------------------


def _become_subreaper() -> bool:
    """Orphaned descendants (the forkserver's workers) are reparented to us and reaped here, so
    RUSAGE_CHILDREN counts every process of the tree."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_all(timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


class TreeSampler(threading.Thread):
    """Peak RSS of a process tree (the sum over its live processes, and the largest one), and the
    CPU time per kind of process (last sample before each exits: approximate, a lower bound)."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_sum = self.peak_one = 0
        self.peak_procs = 0
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (kind, user + system seconds)
        self.stop = threading.Event()

    def _kind(self, p, root) -> str:
        if p.pid == root.pid:
            return "main"
        cmd = " ".join(p.cmdline())
        if "forkserver" in cmd:  # the server, or a math worker it forked
            return "forkserver" if p.ppid() == root.pid else "math_workers"
        if "resource_tracker" in cmd:
            return "resource_tracker"
        parent = p.ppid()
        if parent == root.pid:
            return "feature_pool"
        return "math_workers" if parent in self.cpu and self.cpu[parent][0] == "forkserver" else "other"

    def cpu_by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for kind, seconds in self.cpu.values():
            out[kind] = round(out.get(kind, 0.0) + seconds, 2)
        return dict(sorted(out.items()))

    def run(self) -> None:
        try:
            import psutil  # comes with the cpu and train extras; not a dependency of distill
        except ImportError:
            print("psutil is not installed: no RSS figures", file=sys.stderr)
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = biggest = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    times = p.cpu_times()
                    kind = self.cpu[p.pid][0] if p.pid in self.cpu else self._kind(p, root)
                    self.cpu[p.pid] = (kind, times.user + times.system)
                except psutil.Error:
                    continue
                total, biggest = total + rss, max(biggest, rss)
            self.peak_sum, self.peak_one = max(self.peak_sum, total), max(self.peak_one, biggest)
            self.peak_procs = max(self.peak_procs, len(procs))
            self.stop.wait(self.every)


def measure(cmd: list[str], rows: int, log_path: Path) -> dict:
    """Run `cmd` to completion; wall, CPU of the tree, peak RSS, traces/s."""
    load_before = loadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
    _reap_all()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed (exit {rc}); see {log_path}:\n{log_path.read_text()[-3000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "rows": rows,
        "wall_s": round(wall, 2),
        "traces_per_s": round(rows / wall, 1),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1k_traces": round(1000 * cpu / rows, 3),
        "user_s": round(after.ru_utime - before.ru_utime, 2),
        "system_s": round(after.ru_stime - before.ru_stime, 2),
        "traces_per_cpu_s": round(rows / cpu, 1) if cpu else None,
        "peak_rss_tree_mib": round(sampler.peak_sum / 2**20),
        "peak_rss_largest_process_mib": round(sampler.peak_one / 2**20),
        "max_processes": sampler.peak_procs,
        "cpu_s_by_process_approx": sampler.cpu_by_kind(),
        "load_before": load_before,
        "load_after": loadavg(),
    }


# --- the filter under test -------------------------------------------------------------------------


def run_distill(corpus: Path, out: Path, rows: int, workers: int | None, recipe: Path | None = None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(REPO / ".venv" / "bin" / "distill"), "filter", str(corpus), "-o", str(out),
           "--decontaminate", str(GSM8K)]  # fmt: skip
    if workers:
        cmd += ["--workers", str(workers)]
    if recipe:
        cmd += ["--recipe", str(recipe)]
    result = measure(cmd, rows, out.parent / f"{out.name}.log")
    report = json.loads((out / "report.json").read_text())
    result["funnel"] = {f["stage"]: f["dropped"] for f in report["funnel"][1:]}
    result["kept"] = report["kept"]
    result["verdicts"] = report["verdicts"]
    return result


def _read_column_rows(folder: Path, columns: list[str]) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for p in sorted((folder / "data").glob("*.parquet"))
            for r in pq.read_table(p, columns=columns).to_pylist()]  # fmt: skip


def dedup_quality(out: Path, truth: dict) -> dict:
    """Near-dup recall and false positives from the filter's own output (rejects with stage dedup)."""
    cols = ["id", "reject_stage", "reject_reason", "verdict"]
    rejected = _read_column_rows(out / "rejects", cols)
    kept = _read_column_rows(out / "sft", ["id"])
    stage = {r["id"]: r["reject_stage"] for r in rejected}
    stage.update({r["id"]: None for r in kept})
    match: dict[str, str] = {}
    for r in rejected:
        if r["reject_stage"] == "dedup":
            # `exact_duplicate: reasoning equals <id>`, `near_duplicate: reasoning ~ <id> (jaccard ~x)`
            match[r["id"]] = re.search(r"(?:equals|~) (\S+)", r["reject_reason"]).group(1)
    # rows that reached the dedup stage: not rejected by the first pass (or the difficulty band)
    reached = {rid for rid, s in stage.items() if s in (None, "dedup", "select")}

    def root(rid: str) -> str:
        seen = 0
        while rid in match and seen < 100:
            rid, seen = match[rid], seen + 1
        return rid

    near = [(a, b) for a, b, _ in truth["near_pairs"] if a in reached and b in reached]
    hits = [root(a) == root(b) for a, b in near]
    in_near = {x for a, b, _ in truth["near_pairs"] for x in (a, b)}
    distinct = [rid for rid in reached if rid not in in_near]
    false_pos = [rid for rid in distinct if rid in match]
    related = [(a, b) for a, b, _ in truth["related_pairs"] if a in reached and b in reached]
    exact = sum(
        r["reject_reason"].startswith("exact_duplicate") for r in rejected if r["reject_stage"] == "dedup"
    )
    return {
        "planted_near_pairs": len(truth["near_pairs"]),
        "near_pairs_reaching_dedup": len(near),
        "recall": round(sum(hits) / len(hits), 4) if hits else None,
        "distinct_rows_reaching_dedup": len(distinct),
        "false_positives": len(false_pos),
        "false_positive_rate": round(len(false_pos) / len(distinct), 5) if distinct else None,
        "related_pairs_reaching_dedup": len(related),
        "related_pairs_merged": sum(root(a) == root(b) for a, b in related),
        "exact_duplicates": exact,
        "dedup_rejects": len(match),
    }


def verify_agreement(out: Path, truth: dict) -> dict:
    """Verdicts against the planted truth (right answer -> pass, wrong or cut off -> fail)."""
    rows = _read_column_rows(out / "rejects", ["id", "verdict"]) + _read_column_rows(
        out / "sft", ["id", "verdict"]
    )
    truncated = set(truth["truncated"])
    counts: Counter = Counter()
    for r in rows:
        expect = "fail" if r["id"] in truncated or not truth["correct"][r["id"]] else "pass"
        counts["agree" if r["verdict"] == expect else f"expected {expect}, got {r['verdict']}"] += 1
    return dict(counts)


# --- the plain reference ---------------------------------------------------------------------------


def reference_pipeline(corpus: Path, n: int, out: Path) -> None:
    """The plain way, in one process (see the module docstring)."""
    import hashlib

    import pyarrow.parquet as pq
    from datasketch import MinHash, MinHashLSH
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    from distill.filter.decontam import Decontaminator
    from distill.filter.output import messages_of
    from distill.filter.readability import check_readability
    from distill.schema import FILTERED_SCHEMA, SFT_SCHEMA, to_table

    gold_config = [LatexExtractionConfig(), ExprExtractionConfig()]
    pred_config = [LatexExtractionConfig(boxed_match_priority=0)]
    rows: list[dict] = []
    for path in sorted((corpus / "data").glob("*.parquet")):
        rows += pq.read_table(path).to_pylist()
        if len(rows) >= n:
            break
    rows = rows[:n]
    decontam = Decontaminator([GSM8K])
    for row in rows:
        row["reject_stage"] = row["reject_reason"] = None
        if reason := decontam.reason(row["problem"] or ""):
            row["reject_stage"], row["reject_reason"] = "decontaminate", reason
            continue
        answer = (row["answer"] or "").strip()  # plain math-verify: a bare gold wrapped in \\boxed{}
        answer = answer if "\\boxed" in answer or "$" in answer else f"\\boxed{{{answer}}}"
        gold = parse(answer, extraction_config=gold_config)
        text = row["content"] if row["content"] else (row["reasoning"] or "")[-2000:]
        pred = parse(text, extraction_config=pred_config)
        ok = bool(gold) and verify(gold, pred)
        row["verdict"] = "pass" if ok else "fail"
        if not ok:
            row["reject_stage"], row["reject_reason"] = "verify", "fail"
        elif (check := check_readability(row)) is not None:
            row["reject_stage"], row["reject_reason"] = "readability", check[1]
    alive = sorted(
        (r for r in rows if r["reject_stage"] is None), key=lambda r: (r["completion_tokens"], r["id"])
    )
    lsh, digests, per_prompt = MinHashLSH(threshold=0.8, num_perm=128), set(), set()
    for i, row in enumerate(alive):
        text = row["reasoning"] or ""
        digest = hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=16).digest()
        if digest in digests:
            row["reject_stage"], row["reject_reason"] = "dedup", "exact"
            continue
        words = text.lower().split()
        m = MinHash(num_perm=128)
        m.update_batch([" ".join(words[j : j + 5]).encode("utf-8") for j in range(len(words) - 4)])
        if lsh.query(m):
            row["reject_stage"], row["reject_reason"] = "dedup", "near"
            continue
        lsh.insert(i, m)
        digests.add(digest)
        if row["prompt_id"] in per_prompt:
            row["reject_stage"], row["reject_reason"] = "select", "max_per_prompt=1"
            continue
        per_prompt.add(row["prompt_id"])
    (out / "sft").mkdir(parents=True, exist_ok=True)
    kept = [r for r in rows if r["reject_stage"] is None]
    for r in kept:
        r["messages"] = messages_of(r)
    pq.write_table(to_table(kept, SFT_SCHEMA), out / "sft" / "train.parquet", compression="zstd")
    dropped = [r for r in rows if r["reject_stage"] is not None]
    pq.write_table(to_table(dropped, FILTERED_SCHEMA), out / "rejects.parquet", compression="zstd")
    stages = Counter(r["reject_stage"] for r in dropped)
    (out / "counts.json").write_text(json.dumps({"kept": len(kept), "stages": stages}))


def run_reference(corpus: Path, n: int, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_reference", str(corpus), str(n), str(out)]
    result = measure(cmd, n, out.parent / f"{out.name}.log")
    result.update(json.loads((out / "counts.json").read_text()))
    return result


# --- what grows with the rows ---------------------------------------------------------------------


def memory_breakdown(corpus: Path, out: Path) -> dict:
    """In this (fresh) process, from a finished run's kept `work/`: the main process's memory that
    grows with the rows, structure by structure as the stage builds it: bytes alive after each step
    by tracemalloc (Python objects and numpy arrays; each step's objects kept alive while the next
    is measured), and each step's own peak. The structures: the plan's keys (their signature array
    apart), the row-id index (a dict of every id: the merge's repeated-id check, and the first
    pass's, which holds its own id strings), the exact-dedup digests, the LSH index of the rows that share a band, and
    `make_plan` as the stage runs it (with its own dedup structures)."""
    import gc
    import tracemalloc

    import numpy as np

    from distill.filter.config import FilterConfig
    from distill.filter.dedup import ExactDedup, NearDedup, rows_sharing_a_band
    from distill.filter.plan import make_plan
    from distill.filter.traces import list_trace_files
    from distill.filter.work import ids_of_sealed, read_keys
    from distill.shards import ShardStore

    gc.disable()  # as in the filter's main process (garbage collection 100x rarer)
    cfg, files = FilterConfig(), list_trace_files(corpus)
    work = ShardStore(out / "work", {}, len(files))
    for path in (out / "work" / "manifests").glob("worker-*.json"):
        work.shards.update(json.loads(path.read_text())["shards"])
    held: dict[str, float] = {}
    peaks: dict[str, float] = {}
    tracemalloc.start()

    def step(name: str, fn: Callable[[], Any]) -> Any:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        value = fn()
        now, peak = tracemalloc.get_traced_memory()
        held[name], peaks[name] = (now - before) / 2**20, (peak - before) / 2**20
        return value

    keys = step("plan keys (read_keys)", lambda: read_keys(work, files, cfg.dedup.num_perm))
    held["  of which MinHash signatures (numpy)"] = keys.signatures.nbytes / 2**20
    seen = step("row-id index, merge (ids shared with the keys)",
                lambda: {rid: k for k, (a, b) in enumerate(keys.bounds) for rid in keys.ids[a:b]})  # fmt: skip
    del seen
    gc.collect()
    seen = step("row-id index, first pass (ids_of_sealed: its own id strings)",
                lambda: ids_of_sealed(files, work, [len(files)]))  # fmt: skip
    del seen
    gc.collect()  # what a step left behind in reference cycles
    alive = sorted((i for i, s in enumerate(keys.stage1) if s is None), key=keys.preference)

    def exact_index() -> ExactDedup:
        exact = ExactDedup()
        for i in alive:
            exact.add_digest(keys.ids[i], keys.digests[i])
        return exact

    exact = step("exact-dedup digests (ExactDedup)", exact_index)
    del exact
    gc.collect()  # what a step left behind in reference cycles
    shared = rows_sharing_a_band(keys.signatures[np.array(alive)], cfg.dedup.bands, cfg.dedup.rows)

    def near_index() -> NearDedup:
        near = NearDedup(cfg.dedup)
        for i, may in zip(alive, shared.tolist(), strict=True):
            if may:
                near.add_signature(keys.ids[i], keys.signatures[i])
        return near

    near = step("LSH index (NearDedup, rows sharing a band)", near_index)
    del near
    gc.collect()  # what a step left behind in reference cycles
    plan = step("make_plan (its result; peak: all of it)", lambda: make_plan(keys, cfg))
    tracemalloc.stop()
    return {
        "rows": len(keys.ids),
        "rows_reaching_dedup": len(alive),
        "rows_sharing_an_lsh_band": int(shared.sum()),
        "second_pass_decisions": len(plan.decisions),
        "held_mib": {k: round(v, 1) for k, v in held.items()},
        "peak_mib": {k: round(v, 1) for k, v in peaks.items()},
    }


# --- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="20000,100000", help="Rows per filter run, comma-separated.")
    parser.add_argument(
        "--reference-rows", type=int, default=20000, help="Rows for the slow reference (0: skip)."
    )
    parser.add_argument("--reference-small", type=int, default=500,
                        help="Rows of a second reference run: its start-up vs per-row cost (0: skip).")  # fmt: skip
    parser.add_argument("--shard-rows", type=int, default=2000, help="Rows per input shard.")
    parser.add_argument("--trace-chars", default="8000,30000",
                        help="MIN,MAX characters of each trace's reasoning (shorter traces: 1M rows on a small disk).")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="distill filter runs per size; the median wall time is reported (this host drifts).")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="distill filter --workers (default: CPUs).")
    parser.add_argument("--recipe", type=Path, default=None, help="distill filter --recipe (default: none).")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distill-filter-bench"),
                        help="Corpora (cached between runs) and outputs.")  # fmt: skip
    parser.add_argument("--rebuild", action="store_true", help="Rebuild the cached corpora.")
    parser.add_argument("--keep-outputs", action="store_true", help="Keep the filter outputs.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--breakdown", action="store_true",
                        help="Per size, after the runs: what in the main process grows with the rows (RSS per structure).")  # fmt: skip
    parser.add_argument("--_reference", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--_breakdown", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._breakdown:
        print(json.dumps(memory_breakdown(Path(args._breakdown[0]), Path(args._breakdown[1]))))
        return
    if args._reference:
        corpus, n, out = args._reference
        reference_pipeline(Path(corpus), int(n), Path(out))
        return
    subreaper = _become_subreaper()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    chars = tuple(int(c) for c in args.trace_chars.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpora = {}
    for n in sizes:
        print(f"corpus of {n} rows ...", flush=True)
        corpora[n] = ensure_corpus(args.workdir, n, args.seed, args.shard_rows, args.rebuild, chars)
    smallest = min(sizes)
    info = _corpus_info(*corpora[smallest])

    def measure_reference() -> dict:
        print(f"reference pipeline on {args.reference_rows} rows ...", flush=True)
        started = round(time.time(), 1)
        ref = run_reference(corpora[smallest][0], args.reference_rows, args.workdir / "out-reference")
        ref["started_at"] = started
        if args.reference_small:  # a second, smaller run: the reference's start-up vs per-row cost
            small = run_reference(corpora[smallest][0], args.reference_small, args.workdir / "out-reference")
            per_row = (ref["cpu_s"] - small["cpu_s"]) / (ref["rows"] - small["rows"])
            ref["marginal"] = {
                "rows": [small["rows"], ref["rows"]],
                "cpu_s": [small["cpu_s"], ref["cpu_s"]],
                "cpu_s_per_1k_traces": round(1000 * per_row, 3),
                "startup_cpu_s": round(ref["cpu_s"] - per_row * ref["rows"], 2),
                "wall_s": [small["wall_s"], ref["wall_s"]],
                "wall_s_per_1k_traces": round(
                    1000 * (ref["wall_s"] - small["wall_s"]) / (ref["rows"] - small["rows"]), 3
                ),
            }
        if not args.keep_outputs:
            shutil.rmtree(args.workdir / "out-reference", ignore_errors=True)
        return ref

    if args.breakdown and args.recipe is None:  # the work/ folder kept for the breakdown
        args.recipe = args.workdir / "keep-work.yaml"
        args.recipe.write_text("filter:\n  keep_work: true\n")
    # The reference runs between the first and the second distill run of the smallest size: the
    # host drifts over minutes, and the runs compared then straddle it in time.
    runs, ref = [], None
    for n in sizes:
        corpus, truth = corpora[n]
        out = args.workdir / f"out-n{n}"
        tries = []
        for k in range(args.repeat):
            print(f"distill filter on {n} rows ({k + 1} of {args.repeat}) ...", flush=True)
            started = round(time.time(), 1)
            tries.append(run_distill(corpus, out, n, args.workers, args.recipe))
            tries[-1]["started_at"] = started
            if n == smallest and k == 0 and args.reference_rows:
                ref = measure_reference()
        # the run of median wall time stands for the size; every run is kept
        run = sorted(tries, key=lambda t: t["wall_s"])[len(tries) // 2]
        run["repeats"] = [
            {k: t[k] for k in ("wall_s", "traces_per_s", "cpu_s", "load_before", "started_at")} for t in tries
        ]
        if args.breakdown:  # in a fresh process, from the kept work/ of the last run
            cmd = [sys.executable, str(Path(__file__).resolve()), "--_breakdown", str(corpus), str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True)
            run["memory_breakdown"] = json.loads(done.stdout.splitlines()[-1])
            print(f"  memory: {run['memory_breakdown']}", flush=True)
        run["dedup"] = dedup_quality(out, truth)
        run["verify_vs_planted"] = verify_agreement(out, truth)
        runs.append(run)
        print(f"  {run['traces_per_s']} traces/s, {run['cpu_s_per_1k_traces']} CPU-s per 1k, "
              f"peak RSS {run['peak_rss_tree_mib']} MiB, recall {run['dedup']['recall']}, "
              f"FP {run['dedup']['false_positive_rate']}", flush=True)  # fmt: skip
        if not args.keep_outputs:
            shutil.rmtree(out, ignore_errors=True)

    if ref is None and args.reference_rows:
        ref = measure_reference()
    import datasketch
    import numpy as np
    import pyarrow

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO)
    result = {
        "corpus": info,
        "distill_filter": runs,
        "reference": ref,
        "speedup": {
            f"{r['rows']}": {
                "wall": round(r["traces_per_s"] / ref["traces_per_s"], 1),
                "per_cpu_s": round(r["traces_per_cpu_s"] / ref["traces_per_cpu_s"], 1),
                "per_cpu_s_vs_reference_marginal": round(
                    ref["marginal"]["cpu_s_per_1k_traces"] / r["cpu_s_per_1k_traces"], 1
                )
                if "marginal" in ref
                else None,
                # the reference run on r's rows, extrapolated: its start-up + r's rows at its
                # per-row wall time (a single process: time is linear in rows)
                "wall_vs_reference_at_same_rows": round(
                    (
                        ref["wall_s"]
                        + (r["rows"] - ref["rows"]) * ref["marginal"]["wall_s_per_1k_traces"] / 1000
                    )
                    / r["wall_s"],
                    1,
                )
                if "marginal" in ref
                else None,
            }
            for r in runs
        }
        if ref
        else None,
        "peak_rss_tree_mib_by_rows": {f"{r['rows']}": r["peak_rss_tree_mib"] for r in runs},
        "peak_rss_largest_process_mib_by_rows": {
            f"{r['rows']}": r["peak_rss_largest_process_mib"] for r in runs
        },
        "targets": {
            "traces_per_s_2_cores": ">= 1000",
            "speedup_vs_reference": ">= 10",
            "recall": ">= 0.95",
            "false_positive_rate": "<= 0.01",
            "peak_rss": "sub-linear in rows",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_end": loadavg(),
            "note": "2 cores shared with other work: wall-clock figures are pessimistic; "
            "CPU-s per 1k traces is far less load-sensitive",
            "subreaper": subreaper,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pyarrow": pyarrow.__version__,
            "datasketch": datasketch.__version__,
            "git_commit": commit.stdout.strip() or None,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print("\nsummary:")
    for r in runs:
        print(f"  distill filter {r['rows']:>7} rows: {r['traces_per_s']:>7} traces/s wall, "
              f"{r['cpu_s_per_1k_traces']:>6} CPU-s/1k, peak RSS {r['peak_rss_tree_mib']} MiB (tree), "
              f"recall {r['dedup']['recall']}, FP rate {r['dedup']['false_positive_rate']}, "
              f"load {r['load_before']}")  # fmt: skip
    if ref:
        print(f"  reference       {ref['rows']:>7} rows: {ref['traces_per_s']:>7} traces/s wall, "
              f"{ref['cpu_s_per_1k_traces']:>6} CPU-s/1k, peak RSS {ref['peak_rss_tree_mib']} MiB")  # fmt: skip
        for rows, x in result["speedup"].items():
            extra = ""
            if x["per_cpu_s_vs_reference_marginal"] is not None:  # needs --reference-small
                extra = (f" ({x['per_cpu_s_vs_reference_marginal']}x against the reference's per-row CPU; "
                         f"{x['wall_vs_reference_at_same_rows']}x wall against the reference extrapolated "
                         f"to {rows} rows)")  # fmt: skip
            print(f"  speedup at {rows} rows: {x['wall']}x wall, {x['per_cpu_s']}x per CPU-s{extra}")


def _corpus_info(root: Path, truth: dict) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    first = sorted((root / "data").glob("*.parquet"))[0]
    t = pq.read_table(first, columns=["completion", "prompt_id"])
    kb = np.array([len(s.encode()) for s in t.column("completion").to_pylist()]) / 1000
    near_j = [j for _, _, j in truth["near_pairs"]]
    return {
        "shard": first.name,
        "completion_kb_min_mean_max": [round(float(x), 1) for x in (kb.min(), kb.mean(), kb.max())],
        "near_pair_jaccard_mean": round(float(np.mean(near_j)), 3),
        "wrong_answer_share": round(1 - float(np.mean(list(truth["correct"].values()))), 3),
        "truncated_share": round(len(truth["truncated"]) / len(truth["correct"]), 3),
        "build_s": truth.get("build_s"),
    }


if __name__ == "__main__":
    main()
