"""The filter's report: `report.json` (machine-readable) and `report.md` with PNG plots.

Plots: the funnel per stage, completion-length histograms of kept vs dropped rows, and the
distribution of per-prompt pass rates. matplotlib is optional (the `report` extra); without it the
report has tables only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from distill.filter.config import FilterConfig
from distill.filter.plan import Plan
from distill.shards import atomic_write_text

STAGE_ORDER = ("decontaminate", "verify", "readability", "difficulty", "dedup", "select")


def _quantiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"count": 0, "p50": None, "p90": None, "max": None}
    arr = np.asarray(values)
    return {
        "count": len(values),
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "max": int(arr.max()),
    }


def build_report(counts: dict[str, Any], plan: Plan) -> dict[str, Any]:
    remaining = counts["rows"]
    funnel = [{"stage": "input", "rows": remaining, "dropped": 0}]
    for stage in STAGE_ORDER:
        dropped = counts["stages"].get(stage, 0)
        remaining -= dropped
        funnel.append({"stage": stage, "rows": remaining, "dropped": dropped})
    rates = [r for r in plan.pass_rates.values() if r is not None]
    hist, edges = np.histogram(rates, bins=10, range=(0, 1))
    return {
        "rows": counts["rows"],
        "kept": counts["kept"],
        "funnel": funnel,
        "reasons": dict(sorted(counts["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))),
        "verdicts": dict(sorted(counts["verdicts"].items())),
        "pass_rate": {
            "prompts": len(plan.pass_rates),
            "prompts_with_verdicts": len(rates),
            "mean": float(np.mean(rates)) if rates else None,
            "histogram": {f"{edges[i]:.1f}-{edges[i + 1]:.1f}": int(hist[i]) for i in range(10)},
            "all_pass": sum(r == 1 for r in rates),
            "none_pass": sum(r == 0 for r in rates),
        },
        "lengths": {
            "kept": _quantiles(counts["kept_tokens"]),
            "rejected": _quantiles(counts["rejected_tokens"]),
        },
        "pairs": len(plan.pairs),
    }


def _plots(out: Path, report: dict[str, Any], counts: dict[str, Any], plan: Plan) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    (out / "plots").mkdir(exist_ok=True)
    made = []

    fig, ax = plt.subplots(figsize=(7, 3.5))
    stages = [f["stage"] for f in report["funnel"]]
    ax.barh(stages[::-1], [f["rows"] for f in report["funnel"]][::-1], color="#4878a8")
    ax.set_xlabel("rows remaining after stage")
    ax.set_title("Filter funnel")
    fig.tight_layout()
    fig.savefig(out / "plots/funnel.png", dpi=100)
    plt.close(fig)
    made.append("plots/funnel.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    kept, dropped = counts["kept_tokens"], counts["rejected_tokens"]
    top = max([1, *kept, *dropped])
    bins = np.linspace(0, top, 30)
    ax.hist(
        [kept, dropped], bins=bins, label=["kept", "dropped"], color=["#4c9a5a", "#c0504d"], stacked=False
    )
    ax.set_xlabel("completion tokens")
    ax.set_ylabel("rows")
    ax.legend()
    ax.set_title("Lengths: kept vs dropped")
    fig.tight_layout()
    fig.savefig(out / "plots/lengths.png", dpi=100)
    plt.close(fig)
    made.append("plots/lengths.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    rates = [r for r in plan.pass_rates.values() if r is not None]
    ax.hist(rates, bins=np.linspace(0, 1, 11), color="#8064a2")
    ax.set_xlabel("pass rate of the prompt's samples")
    ax.set_ylabel("prompts")
    ax.set_title("Pass rate per prompt")
    fig.tight_layout()
    fig.savefig(out / "plots/pass_rate.png", dpi=100)
    plt.close(fig)
    made.append("plots/pass_rate.png")
    return made


def _markdown(report: dict[str, Any], plots: list[str]) -> str:
    lines = [
        "# Filter report",
        "",
        f"{report['kept']} of {report['rows']} rows kept.",
        "",
        "## Funnel",
        "",
        "| stage | dropped | rows left |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {f['stage']} | {f['dropped']} | {f['rows']} |" for f in report["funnel"]]
    lines += ["", "## Reasons", "", "| stage: reason | rows |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in report["reasons"].items()] or ["| (none) | 0 |"]
    lines += ["", "## Verdicts", "", "| verdict | rows |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in report["verdicts"].items()]
    pr = report["pass_rate"]
    mean = "n/a" if pr["mean"] is None else f"{pr['mean']:.3f}"
    lines += [
        "",
        "## Pass rate per prompt",
        "",
        f"{pr['prompts_with_verdicts']} prompts with verdicts; mean pass rate {mean}; "
        f"{pr['all_pass']} all passed, {pr['none_pass']} none passed.",
        "",
    ]
    lengths = report["lengths"]
    lines += [
        "## Completion lengths (tokens)",
        "",
        "| | rows | p50 | p90 | max |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ("kept", "rejected"):
        q = lengths[name]
        lines.append(f"| {name} | {q['count']} | {q['p50']} | {q['p90']} | {q['max']} |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def write_report(out: Path, counts: dict[str, Any], plan: Plan, cfg: FilterConfig) -> dict[str, Any]:
    report = build_report(counts, plan)
    plots = _plots(out, report, counts, plan)
    report["plots"] = plots
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    atomic_write_text(out / "report.md", _markdown(report, plots))
    return report
