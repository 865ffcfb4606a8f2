"""Training throughput: `distill train-student`'s data path vs a plain TRL SFT setup, same model, data, steps.

    .venv/bin/python benchmarks/train_throughput.py [--model smollm2-135m] [--steps 6] [--repeats 2]

Data: conversations whose assistant turns have long-tailed lengths like real reasoning traces
(lognormal, clipped to 64..2048 tokens), cut from real text in data/ (s1K-style reasoning traces,
GSM8K solutions, HumanEval code). Both setups use the same student, precision (the runtime
default), optimizer settings, gradient checkpointing (off: the default at 2048 tokens) and number of
optimizer steps (gradient accumulation 1):

- distill: our tokenization (assistant-only labels), BFD packing into rows of 2048 tokens,
  padding-free batches with per-conversation attention (TrainConfig defaults), one packed row per step;
- plain TRL: SFTTrainer on the `messages` column with its defaults (padded batches, no packing, sdpa),
  at max_length 2048 so nothing is truncated, per-device batch --baseline-batch (TRL's default is 8;
  4 keeps memory in bounds without gradient checkpointing on a shared 24 GB machine).

tokens/s counts only real (non-pad) tokens, over steps 2..N of each run (step 1 is warm-up); runs
alternate ABBA so drifting load hits both setups alike. Also reported: the median of per-step rates
(robust to bursts of load from other processes), the padding ratio (pad tokens / tokens in the batch
tensors) and the load average. Writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DISTILL_NO_PROGRESS", "1")

from distill.provenance import utc_now  # noqa: E402 (after the path set-up)


def corpus_text() -> str:
    """Real text from the bundled data sets, concatenated."""
    import gzip

    import pyarrow.parquet as pq

    parts = []
    traces = pq.read_table(REPO / "data" / "reasoning_traces_s1k_sample.parquet").to_pylist()
    parts += [r["gemini_thinking_trajectory"] for r in traces] + [r["gemini_attempt"] for r in traces]
    with open(REPO / "data" / "gsm8k_test.jsonl", encoding="utf-8") as fh:
        parts += [json.loads(line)["answer"] for line in fh]
    with gzip.open(REPO / "data" / "humaneval.jsonl.gz", "rt", encoding="utf-8") as fh:
        parts += [json.loads(line)["prompt"] + json.loads(line)["canonical_solution"] for line in fh]
    return "\n\n".join(parts)


def make_rows(tokenizer, n: int, seed: int, lo: int = 64, hi: int = 2048) -> tuple[list[dict], list[int]]:
    """`n` conversations whose total token counts follow a lognormal clipped to [lo, hi]."""
    rng = random.Random(seed)
    stream = tokenizer(corpus_text(), add_special_tokens=False)["input_ids"]
    with open(REPO / "data" / "gsm8k_test.jsonl", encoding="utf-8") as fh:
        questions = [json.loads(line)["question"] for line in fh]
    rows, targets = [], []
    for i in range(n):
        target = int(min(hi, max(lo, rng.lognormvariate(math.log(320), 0.9))))
        question = questions[i % len(questions)]
        overhead = len(tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=True))
        body = max(8, target - overhead - 16)
        start = rng.randrange(0, len(stream) - body)
        text = tokenizer.decode(stream[start : start + body])
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": f"<think>\n{text}\n</think>\n\nDone."},
                ]
            }
        )
        targets.append(target)
    return rows, targets


class Meter:
    """Wraps a collator to count real and total tokens per batch; a callback times steps."""

    def __init__(self, collator):
        self.collator, self.batches, self.step_end = collator, [], []

    def __call__(self, examples):
        batch = self.collator(examples)
        total = batch["input_ids"].numel()
        real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else total
        self.batches.append((real, total))
        return batch

    def callback(self):
        from transformers import TrainerCallback

        meter = self

        class _Timer(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                meter.step_end.append(time.perf_counter())

        return _Timer()

    def summary(self) -> dict:
        timed = self.batches[1 : len(self.step_end)]  # batches of steps 2..N
        seconds = self.step_end[-1] - self.step_end[0]
        real = sum(r for r, _ in timed)
        total = sum(t for _, t in timed)
        durations = [b - a for a, b in zip(self.step_end, self.step_end[1:], strict=False)]
        per_step = sorted(r / d for (r, _), d in zip(timed, durations, strict=True) if d > 0)
        return {
            "timed_steps": len(durations),
            "seconds": round(seconds, 2),
            "real_tokens": real,
            "batch_tokens": total,
            "padding_ratio": round(1 - real / total, 4) if total else None,
            "tokens_per_s": round(real / seconds, 2) if seconds > 0 else None,
            "median_step_tokens_per_s": round(per_step[len(per_step) // 2], 2) if per_step else None,
        }


def combine(runs: list[dict]) -> dict:
    """Several runs of one setup: totals over all timed steps, the median of per-step rates, each run."""
    real = sum(r["real_tokens"] for r in runs)
    batch = sum(r["batch_tokens"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {
        "tokens_per_s": round(real / seconds, 2),
        "median_step_tokens_per_s": sorted(r["median_step_tokens_per_s"] for r in runs)[len(runs) // 2],
        "padding_ratio": round(1 - real / batch, 4),
        "real_tokens": real,
        "seconds": round(seconds, 2),
        "settings": runs[0]["settings"],
        "runs": [{k: v for k, v in r.items() if k not in ("settings", "runtime")} for r in runs],
        **({"runtime": runs[0]["runtime"]} if "runtime" in runs[0] else {}),
    }


def run_distill(data: Path, model: str, steps: int, out: Path, lr: float) -> dict:
    from distill.train.config import TrainConfig
    from distill.train.run import make_trainer, prepare

    config = TrainConfig(
        model=model,
        data=str(data),
        output=str(out),
        max_length=2048,
        max_steps=steps,
        global_batch_size=1,
        learning_rate=lr,
        logging_steps=1,
        save_steps=10_000,
    )
    p = prepare(config)
    trainer = make_trainer(p)
    meter = Meter(trainer.data_collator)
    trainer.data_collator = meter
    trainer.add_callback(meter.callback())
    trainer.train()
    return {
        **meter.summary(),
        "settings": "distill: assistant-only labels, BFD packing (2048), padding-free, batch 1 packed row",
        "runtime": p.runtime.as_dict(),
    }


def run_plain_trl(data: Path, model: str, steps: int, out: Path, lr: float, batch: int, bf16: bool) -> dict:
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(out),
        max_length=2048,  # TRL's default 1024 would truncate; nothing here is longer than 2048
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        max_steps=steps,
        learning_rate=lr,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=bf16,
        use_cpu=True,
        gradient_checkpointing=False,  # as ours at 2048 tokens (TRL's default True would be slower still)
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    dataset = load_dataset("json", data_files=str(data), split="train")
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=AutoTokenizer.from_pretrained(model)
    )
    meter = Meter(trainer.data_collator)
    trainer.data_collator = meter
    trainer.add_callback(meter.callback())
    trainer.train()
    return {
        **meter.summary(),
        "settings": f"TRL defaults: padded batches of {batch}, no packing, full-sequence loss",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="student (default: the built-in)")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run (step 1 is not timed)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setup, in ABBA order")
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--baseline-batch", type=int, default=4, help="per-device batch of the plain TRL run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_throughput.json"))
    a = parser.parse_args()

    from transformers import AutoTokenizer

    from distill.models import resolve_model
    from distill.train.trainer import native_bf16

    model = resolve_model(a.model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    rows, targets = make_rows(tokenizer, a.rows, a.seed)
    load_before = os.getloadavg()
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        for i in range(a.repeats):
            order = ("distill", "plain") if i % 2 == 0 else ("plain", "distill")
            for setup in order:
                out = Path(tmp) / f"{setup}-{i}"
                if setup == "distill":
                    ours.append(run_distill(data, model, a.steps, out, 1e-5))
                else:
                    bf16 = native_bf16(False)
                    theirs.append(run_plain_trl(data, model, a.steps, out, 1e-5, a.baseline_batch, bf16))
    load_after = os.getloadavg()
    distill, plain = combine(ours), combine(theirs)
    speedup = distill["tokens_per_s"] / plain["tokens_per_s"]
    median_speedup = distill["median_step_tokens_per_s"] / plain["median_step_tokens_per_s"]
    result = {
        "benchmark": "train_throughput",
        "model": a.model,
        "steps": a.steps,
        "repeats": a.repeats,
        "rows": a.rows,
        "lengths": {
            "distribution": "lognormal(median 320, sigma 0.9) clipped to 64..2048 tokens",
            "mean": round(sum(targets) / len(targets), 1),
            "p50": sorted(targets)[len(targets) // 2],
            "p95": sorted(targets)[int(0.95 * len(targets))],
            "max": max(targets),
        },
        "distill": distill,
        "plain_trl": plain,
        "speedup_tokens_per_s": round(speedup, 3),
        "speedup_median_step": round(median_speedup, 3),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpu_count": os.cpu_count(),
        "created_at": utc_now(),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
