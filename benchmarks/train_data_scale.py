"""Training-data preparation at scale: `train-student`'s prepare step alone, 1 process and 2 under torchrun.

    .venv/bin/python benchmarks/train_data_scale.py                          # 20k, 80k, 320k rows
    .venv/bin/python benchmarks/train_data_scale.py --sizes 2000 --repeats 1  # quick

Data: SFT sets of N rows of about 6 KB (5-7 KB, uniform) of real reasoning text, written in the
layout of `distill filter`'s sft/ (`data/train-KKKKK-of-NNNNN.parquet` shards of 10,000 rows,
the `messages` column of SFT_SCHEMA, `manifest.json`): a GSM8K question as the user turn and an
assistant turn `<think>\\n...\\n</think>\\n\\nThe answer is \\boxed{N}.` whose reasoning is cut (at
word boundaries) from random places of the bundled real text (the s1K Gemini trajectories and
attempts, GSM8K solutions). One row in 500 has no assistant turn (dropped and counted as
no_assistant_turn), so the drop accounting runs at every size. Written under --workdir (default
/tmp/train_data_scale; 320k rows are ~2 GB of text, ~1 GB of Parquet) and deleted at the end
unless --keep.

Measured: `distill.train.run.prepare` (exactly the prepare step of `distill train-student`: check
the output folder, the runtime, the tokenizer, read + validate + tokenize + cache the data; no
model is loaded, `train-student --prepare-only` runs the same) on the built-in model's tokenizer
(SmolLM2-135M; default max_length 16384, num_proc --num-proc), in a fresh output folder:

- `1 process`: this script's --worker mode run by a plain python;
- `torchrun x2`: the same under `python -m torch.distributed.run --nproc_per_node 2` (gloo on the
  CPU): rank 0 reads and tokenizes, rank 1 waits at `main_process_first` and then memory-maps
  rank 0's cache. Rank 1's own time is its time after the barrier.

Per process: wall time of prepare, its phases (fingerprint, read, tokenize, load; from
Prepared.timings), the peak RSS from the kernel (ru_maxrss of the process and of its finished
children, the tokenization workers), and peaks sampled every 0.2 s from /proc/PID/status over the
whole process tree: VmRSS and its anonymous part RssAnon (RssFile, the memory-mapped Arrow pages
the process touched, is page cache the kernel can drop at any time). baseline_rss_mb is the RSS
after `import datasets, transformers, trl` (lazy: torch and the tokenizer load inside prepare);
rank 1's peak is the better measure of a process's fixed cost. Tokenization throughput: rows/s and tokens/s over the tokenize phase,
and per core (divided by the worker processes, num_proc). Runs alternate (1 process, torchrun,
1 process, ...) --repeats times per size; the run of median prepare time is reported.

Writes benchmarks/results/train_data_scale.json and prints a table. 2 shared cores: wall times
depend on the load (recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DISTILL_NO_PROGRESS", "1")

SHARD_ROWS = 10_000


def corpus_words() -> list[str]:
    """Real reasoning text from the bundled data, as one list of words (split on spaces)."""
    import pyarrow.parquet as pq

    parts = []
    traces = pq.read_table(REPO / "data" / "reasoning_traces_s1k_sample.parquet").to_pylist()
    parts += [r["gemini_thinking_trajectory"] for r in traces] + [r["gemini_attempt"] for r in traces]
    with open(REPO / "data" / "gsm8k_test.jsonl", encoding="utf-8") as fh:
        parts += [json.loads(line)["answer"].replace("####", "So the answer is") for line in fh]
    return "\n\n".join(parts).split(" ")


def write_sft(folder: Path, rows: int, seed: int = 0) -> dict:
    """An SFT set of `rows` rows of ~6 KB in the layout of a filter's sft/ folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.schema import MESSAGE_TYPE

    rng = random.Random(seed)
    words = corpus_words()
    with open(REPO / "data" / "gsm8k_test.jsonl", encoding="utf-8") as fh:
        questions = [json.loads(line)["question"] for line in fh]
    total = -(-rows // SHARD_ROWS)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    text_bytes = 0
    for shard in range(total):
        messages = []
        for i in range(shard * SHARD_ROWS, min(rows, (shard + 1) * SHARD_ROWS)):
            target = rng.randint(5000, 7000)
            pieces, size = [], 0
            while size < target:
                start = rng.randrange(len(words) - 400)
                piece = " ".join(words[start : start + rng.randint(60, 400)])
                pieces.append(piece)
                size += len(piece) + 2
            reasoning = "\n\n".join(pieces)[:target]
            answer = f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{rng.randint(1, 999)}}}."
            question = questions[i % len(questions)]
            conv = [{"role": "user", "content": question}]
            if i % 500 != 499:  # one row in 500 has nothing to train on
                conv.append({"role": "assistant", "content": answer})
            text_bytes += len(question.encode()) + len(answer.encode())
            messages.append(conv)
        table = pa.table({"messages": pa.array(messages, type=pa.list_(MESSAGE_TYPE))})
        pq.write_table(
            table, folder / "data" / f"train-{shard:05d}-of-{total:05d}.parquet", compression="zstd"
        )
    (folder / "manifest.json").write_text(json.dumps({"rows": rows, "synthetic": True}))
    parquet = sum(f.stat().st_size for f in (folder / "data").iterdir())
    return {"rows": rows, "text_bytes": text_bytes, "parquet_bytes": parquet}


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


class TreeSampler:
    """Peak VmRSS / RssAnon of every process under a root pid, sampled every `interval` s."""

    def __init__(self, root: int, interval: float = 0.2):
        self.root, self.interval, self.peaks = root, interval, {}
        self.info: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        import psutil

        try:
            root = psutil.Process(self.root)
            return [root.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.Error:
            return []

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._tree():
                s = status_kb(pid)
                if not s:
                    continue
                if pid not in self.info:
                    self.info[pid] = describe(pid)
                peak = self.peaks.setdefault(pid, {"VmRSS": 0, "RssAnon": 0, "RssFile": 0})
                for k, v in s.items():
                    peak[k] = max(peak[k], v)
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, dict]:
        """Peaks (MB) by role: "rank 0", "rank 0 workers" (the largest of them), "rank 1", ..."""
        self._stop.set()
        self._thread.join()
        roles: dict[str, dict] = {}
        for pid, peak in self.peaks.items():
            info = self.info.get(pid, {})
            if info.get("role") is None:
                continue
            role = info["role"]
            entry = roles.setdefault(
                role, {"processes": 0, "VmRSS_mb": 0.0, "RssAnon_mb": 0.0, "RssFile_mb": 0.0}
            )
            entry["processes"] += 1
            for k in ("VmRSS", "RssAnon", "RssFile"):
                entry[f"{k}_mb"] = max(entry[f"{k}_mb"], round(peak[k] / 1024, 1))
        return roles


def describe(pid: int) -> dict:
    """Which role a process has: a rank's main process (runs --worker), one of its workers, or other."""
    import psutil

    try:
        proc = psutil.Process(pid)
        cmd = proc.cmdline()
        env = proc.environ()
    except psutil.Error:
        return {"role": None}
    rank = env.get("RANK", "0")
    if "--worker" not in cmd or "torch.distributed.run" in cmd:
        return {"role": None}  # torchrun's own agent, ...
    try:
        parent = proc.parent()
        pcmd = parent.cmdline() if parent is not None else []
        forked = "--worker" in pcmd and "torch.distributed.run" not in pcmd
    except psutil.Error:
        forked = False
    # A forked tokenization worker has its parent's command line.
    return {"role": f"rank {rank} workers" if forked else f"rank {rank}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(args: argparse.Namespace) -> None:
    """One process of a measurement: prepare, then write what it saw to --result/rank-R.json."""
    started = time.perf_counter()
    import datasets  # noqa: F401  (the imports prepare needs, before the baseline)
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from distill.train.config import TrainConfig
    from distill.train.run import prepare

    baseline = status_kb(os.getpid())
    config = TrainConfig(
        model=args.model, data=args.data, output=args.out, num_proc=args.num_proc, ddp_timeout=6 * 3600
    )  # rank 1 waits for rank 0's whole tokenization at one barrier
    t = time.perf_counter()
    p = prepare(config)
    prepare_s = time.perf_counter() - t
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rank = os.environ.get("RANK", "0")
    record = {
        "rank": int(rank),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "import_s": round(t - started, 2),
        "prepare_s": round(prepare_s, 2),
        "timings": p.timings,
        "rows_read": p.conv.rows_read,
        "rows_kept": len(p.dataset),
        "dropped": p.conv.drop_counts(),
        **p.token_stats,
        "baseline_rss_mb": round(baseline.get("VmRSS", 0) / 1024, 1),
        "ru_maxrss_mb": round(self_peak, 1),
        "ru_maxrss_children_mb": round(children_peak, 1),
        "end": status_kb(os.getpid()),
    }
    Path(args.result).mkdir(parents=True, exist_ok=True)
    (Path(args.result) / f"rank-{rank}.json").write_text(json.dumps(record))


def measure(mode: str, data: Path, workdir: Path, model: str, num_proc: int) -> dict:
    out = workdir / "out"
    result = workdir / "result"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(result, ignore_errors=True)
    me = [str(Path(__file__).resolve()), "--worker", "--data", str(data), "--out", str(out)]
    me += ["--model", model, "--num-proc", str(num_proc), "--result", str(result)]
    if mode == "1 process":
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        cmd += ["--master_port", str(free_port()), *me]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DISTILL_NO_PROGRESS": "1"}
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    sampler = TreeSampler(proc.pid)
    output, _ = proc.communicate()
    wall = time.perf_counter() - t
    roles = sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{output[-4000:]}")
    ranks = [json.loads(f.read_text()) for f in sorted(result.iterdir())]
    disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    shutil.rmtree(out, ignore_errors=True)
    rank0 = ranks[0]
    tok_s = rank0["timings"].get("tokenize_s")
    workers = max(1, num_proc)
    throughput = None
    if tok_s:
        throughput = {
            "rows_per_s": round(rank0["rows_kept"] / tok_s, 1),
            "tokens_per_s": round(rank0["tokens"] / tok_s),
            "rows_per_s_per_core": round(rank0["rows_kept"] / tok_s / workers, 1),
            "tokens_per_s_per_core": round(rank0["tokens"] / tok_s / workers),
        }
    return {
        "mode": mode,
        "wall_s": round(wall, 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "ranks": ranks,
        "sampled_peaks": roles,
        "cache_bytes": disk,
        "tokenize_throughput": throughput,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="20000,80000,320000", help="comma-separated row counts")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each mode per size, alternated")
    parser.add_argument(
        "--num-proc", type=int, default=2, help="tokenization processes (TrainConfig.num_proc)"
    )
    parser.add_argument("--model", default="smollm2-135m", help="whose tokenizer (no model is loaded)")
    parser.add_argument("--modes", default="1 process,torchrun x2")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/train_data_scale"))
    parser.add_argument("--keep", action="store_true", help="keep the generated SFT sets")
    parser.add_argument(
        "--output", type=Path, default=REPO / "benchmarks" / "results" / "train_data_scale.json"
    )
    # --worker mode (one process of a measurement)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from distill.models import resolve_model
    from distill.provenance import git_commit, utc_now

    model = resolve_model(args.model)
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    previous = json.loads(args.output.read_text()) if args.output.is_file() else {}
    results = {k: v for k, v in previous.get("sizes", {}).items() if int(k) not in sizes}
    for n in sizes:
        data = args.workdir / f"sft-{n}"
        t = time.perf_counter()
        shutil.rmtree(data, ignore_errors=True)
        written = write_sft(data, n)
        written["write_s"] = round(time.perf_counter() - t, 1)
        print(f"{n} rows: {written}", flush=True)
        runs: dict[str, list] = {m: [] for m in modes}
        for r in range(args.repeats):
            for mode in modes if r % 2 == 0 else reversed(modes):
                run = measure(mode, data, args.workdir, model, args.num_proc)
                runs[mode].append(run)
                print(json.dumps(summary_row(n, run)), flush=True)
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
        chosen = {}
        for mode, mode_runs in runs.items():
            ordered = sorted(mode_runs, key=lambda x: x["ranks"][0]["prepare_s"])
            chosen[mode] = {
                **ordered[len(ordered) // 2],
                "all_prepare_s": [x["ranks"][0]["prepare_s"] for x in mode_runs],
            }
        kept = results.get(str(n), previous.get("sizes", {}).get(str(n), {})).get("runs", {})
        # modes not measured now keep their earlier runs (same generated data: same seed and size)
        results[str(n)] = {"data": written, "runs": {**kept, **chosen}}
        report = {
            "benchmark": "train_data_scale",
            "created_at": utc_now(),
            "git_commit": git_commit(dirty=True),
            "machine": {"cpus": os.cpu_count()},
            "settings": {
                "model": args.model,
                "tokenizer_only": True,
                "num_proc": args.num_proc,
                "max_length": 16384,
                "repeats": args.repeats,
            },
            "sizes": dict(sorted(results.items(), key=lambda kv: int(kv[0]))),
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(json.loads(args.output.read_text()))


def summary_row(n: int, run: dict) -> dict:
    row = {"rows": n, "mode": run["mode"], "wall_s": run["wall_s"], "load": run["load_before"]}
    for rank in run["ranks"]:
        r = rank["rank"]
        row[f"rank{r}_prepare_s"] = rank["prepare_s"]
        row[f"rank{r}_own_s"] = rank["timings"].get("prepare_s")
        row[f"rank{r}_read"] = rank["timings"].get("read")
        row[f"rank{r}_maxrss_mb"] = rank["ru_maxrss_mb"]
        row[f"rank{r}_children_maxrss_mb"] = rank["ru_maxrss_children_mb"]
    row["sampled"] = run["sampled_peaks"]
    row["throughput"] = run["tokenize_throughput"]
    return row


def print_table(report: dict) -> None:
    print(
        "\nrows | mode | rank | prepare s (own) | read | peak RSS MB (kernel) | sampled VmRSS / RssAnon MB | workers' peak"
    )
    for n, entry in report["sizes"].items():
        for mode, run in entry["runs"].items():
            for rank in run["ranks"]:
                r = rank["rank"]
                sampled = run["sampled_peaks"].get(f"rank {r}", {})
                workers = run["sampled_peaks"].get(f"rank {r} workers", {})
                print(
                    f"{n} | {mode} | {r} | {rank['prepare_s']} ({rank['timings'].get('prepare_s')}) | "
                    f"{rank['timings'].get('read')} | {rank['ru_maxrss_mb']} | "
                    f"{sampled.get('VmRSS_mb')} / {sampled.get('RssAnon_mb')} | "
                    f"{workers.get('VmRSS_mb')} / {workers.get('RssAnon_mb')}"
                )
            print(f"   tokenize: {run['tokenize_throughput']}")


if __name__ == "__main__":
    main()
