"""Overhead of `distill generate` over a bare `vllm.LLM.chat` call, on the same warm engine.

    .venv/bin/python benchmarks/generate_overhead.py [--prompts 64 --samples 4 --max-tokens 256 --repeat 1]

Both sides sample the same prompts (GSM8K, the R1 math instruction, `<think>\\n` prefilled) with
the same settings from one vLLM engine (the built-in model on the CPU by default); the prefix
cache is reset before every measured run, and runs alternate (bare, distill, bare, distill, ...).
`ignore_eos` makes every sample exactly max_tokens long, so both sides do identical work.
The distill side is the whole stage (read input, render, tokenize, stream, write sealed Parquet
shards and manifests); the engine start is excluded from both. Writes
benchmarks/results/generate_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/generate_overhead.json"))
    args = ap.parse_args()

    from vllm import SamplingParams as VSP

    from distill.engines.factory import make_engine
    from distill.generate.run import run_generate
    from distill.inputs import read_prompts
    from distill.prompts import chat_messages, user_prompt
    from distill.stages import load_stage_config
    from distill.trace import THINK_OPEN

    cfg = load_stage_config(
        "generate",
        None,
        {
            "input.path": str(ROOT / "data/gsm8k_test.jsonl"),
            "input.columns.problem": "question",
            "input.limit": args.prompts,
            "teacher.model": args.model,
            "teacher.max_model_len": 1024,
            "sampling.num_samples": args.samples,
            "sampling.max_tokens": args.max_tokens,
            "sampling.ignore_eos": True,
            "shard_size": args.shard_size,
        },
    )
    engine = make_engine(cfg.teacher, True)
    t = time.monotonic()
    llm = engine._start(cfg.sampling.seed)
    startup = time.monotonic() - t

    problems = read_prompts(cfg.input).table.to_pylist()
    conversations = [
        [
            *chat_messages(user_prompt(p["problem"], p["domain"], cfg.prompts), cfg.prompts),
            {"role": "assistant", "content": THINK_OPEN + "\n"},
        ]
        for p in problems
    ]
    params = VSP(n=args.samples, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens, ignore_eos=True)

    def bare(convs=conversations, p=params) -> tuple[int, float]:
        llm.reset_prefix_cache()
        t0 = time.monotonic()
        outs = llm.chat(convs, p, use_tqdm=False, add_generation_prompt=False, continue_final_message=True)
        secs = time.monotonic() - t0
        return sum(len(c.token_ids) for o in outs for c in o.outputs), secs

    def distill(c=cfg) -> tuple[int, float]:
        llm.reset_prefix_cache()
        with tempfile.TemporaryDirectory() as tmp:
            c.output = str(Path(tmp) / "out")
            t0 = time.monotonic()
            summary = run_generate(c, engine=engine, log=lambda m: None)
            secs = time.monotonic() - t0
            assert summary.complete
        return summary.tokens_written, secs

    # warm-up of both paths on a few short requests (first-call costs: kernels, allocator, templates)
    small = cfg.model_copy(deep=True)
    small.input.limit, small.sampling.max_tokens = 4, 16
    bare(conversations[:4], VSP(n=args.samples, temperature=0.6, top_p=0.95, max_tokens=16, ignore_eos=True))
    distill(small)
    runs = []
    for _ in range(args.repeat):
        for name, fn in (("bare_llm_chat", bare), ("distill_generate", distill)):
            tokens, secs = fn()
            runs.append(
                {"side": name, "tokens": tokens, "seconds": round(secs, 2), "tok_s": round(tokens / secs, 1)}
            )
            print(runs[-1], flush=True)
    totals = {}
    for side in ("bare_llm_chat", "distill_generate"):
        mine = [r for r in runs if r["side"] == side]
        totals[side] = sum(r["tokens"] for r in mine) / sum(r["seconds"] for r in mine)
    result = {
        "ratio_distill_over_bare": round(totals["distill_generate"] / totals["bare_llm_chat"], 3),
        "tok_s": {k: round(v, 1) for k, v in totals.items()},
        "runs": runs,
        "engine_startup_s": round(startup, 1),
        "settings": vars(args),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    engine.close()


if __name__ == "__main__":
    main()
