"""The filter's report: its counts (`count_rows`, from the plan's keys alone), `report.json`
(machine-readable) and `report.md` with PNG plots.

Plots: the funnel per stage, completion-length histograms of kept vs dropped rows, and the
distribution of per-prompt pass rates. matplotlib is optional (the `report` extra); without it the
report has tables only.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from distill.filter.config import FilterConfig
from distill.filter.plan import Keys, Plan
from distill.filter.reasons import reason_group
from distill.provenance import atomic_write_text

STAGE_ORDER = ("decontaminate", "verify", "readability", "difficulty", "dedup", "select")


def final_rejects(keys: Keys, plan: Plan) -> tuple[list[str | None], list[str | None]]:
    """Every row's reject stage and reason after both passes (None, None: kept)."""
    stages, reasons = list(keys.stage1), list(keys.reasons1)
    decisions = plan.decisions
    for i, rid in enumerate(keys.ids):
        if stages[i] is None and rid in decisions:
            stages[i], reasons[i] = decisions[rid]
    return stages, reasons


def count_rows(keys: Keys, plan: Plan, input_rejects: list[dict] | None = None) -> dict[str, Any]:
    """The report's counts, from the small columns alone. `input_rejects`: the input rows that
    were not usable traces (`rejects.jsonl`): counted in the `input` stage."""
    stages, reasons = final_rejects(keys, plan)
    input_rejects = input_rejects or []
    counts: dict[str, Any] = {
        "rows": len(keys.ids) + len(input_rejects),
        "kept": 0,
        "stages": Counter({"input": len(input_rejects)} if input_rejects else {}),
        "reasons": Counter(f"input: {reason_group('input', r['reason'])}" for r in input_rejects),
        "verdicts": Counter(v or "none" for v in keys.verdicts),
        "kept_tokens": [],
        "rejected_tokens": [],
        "reason_tokens": Counter(),  # completion tokens of the rows each reason dropped
    }
    # a row's tokens: completion_tokens, else characters / 4 - exactly its preference length
    for stage, reason, tokens in zip(stages, reasons, keys.lengths, strict=True):
        if stage is None:
            counts["kept_tokens"].append(tokens)
        else:
            counts["stages"][stage] += 1
            key = f"{stage}: {reason_group(stage, reason)}"
            counts["reasons"][key] += 1
            counts["reason_tokens"][key] += tokens
            counts["rejected_tokens"].append(tokens)
    counts["kept"] = len(counts["kept_tokens"])
    return counts


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
    # input: rows that are no usable trace (rejects.jsonl) or repeat an earlier row's id
    dropped = counts["stages"].get("input", 0)
    remaining = counts["rows"] - dropped
    funnel = [{"stage": "input", "rows": remaining, "dropped": dropped}]
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
        # an input not in the trace schema (docs/data.md): the fields filled in, and golds missing
        **({"derived": counts["derived"]} if counts.get("derived") else {}),
        **({"no_answer_column": counts["no_answer_column"]} if counts.get("no_answer_column") else {}),
        **({"unparsable_golds": counts["unparsable_golds"]} if counts.get("unparsable_golds") else {}),
    }


def _input_lines(report: dict[str, Any], cfg: FilterConfig | None) -> list[str]:
    """What `distill filter` filled in for an input not in the trace schema (none for one that is)."""
    lines = []
    if report.get("derived"):
        fields = ", ".join(f"{name} {n}" for name, n in report["derived"].items())
        lines.append(
            f"Derived fields (not in the input, filled in; rows per field, see docs/data.md): {fields}."
        )
    n = report.get("no_answer_column")
    if n:
        math = cfg.verify.domains.get("math") if cfg is not None else "math"
        if math == "math":
            what = (
                "those the math verifier checks get `error: no gold answer` (rejected unless "
                "`verify.on_error: keep`); for a set without golds, map `verify.domains: {math: none}`"
            )
        else:
            what = f"math rows go to `{math}` (`verify.domains.math`)"
        lines.append(f"No gold answer: {n} rows come from files without an answer column; {what}.")
    golds = report.get("unparsable_golds") or {}
    if golds:
        shown = "; ".join(f"`{g}` ({n} rows)" for g, n in list(golds.items())[:20])
        more = f" and {len(golds) - 20} more (report.json)" if len(golds) > 20 else ""
        lines.append(
            f"Unparsable golds: {len(golds)} gold answers math-verify cannot read, even wrapped in "
            f"`\\boxed{{}}` (`error: unparsable gold`; fix them in the data): {shown}{more}."
        )
    return [part for line in lines for part in (line, "")]  # one paragraph each


def _plots(out: Path, report: dict[str, Any], counts: dict[str, Any], plan: Plan) -> list[str]:
    try:  # the object API, without pyplot: no global figure state, no GUI backend (0.15 s less import)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return []
    (out / "plots").mkdir(exist_ok=True)
    made = []

    def save(name: str, title: str, xlabel: str, ylabel: str | None, draw: Callable[[Any], object]) -> None:
        fig = Figure(figsize=(7, 3.5))
        FigureCanvasAgg(fig)
        # fixed margins (room for the funnel's stage names) instead of tight_layout, which draws
        # the figure once more to measure it; fast PNG compression (plots of a few KB either way)
        fig.subplots_adjust(left=0.19, right=0.97, top=0.9, bottom=0.15)
        ax = fig.subplots()
        draw(ax)
        ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.savefig(out / f"plots/{name}.png", dpi=100, pil_kwargs={"compress_level": 1})
        made.append(f"plots/{name}.png")

    funnel = report["funnel"][::-1]
    save(
        "funnel",
        "Filter funnel",
        "rows remaining after stage",
        None,
        lambda ax: ax.barh([f["stage"] for f in funnel], [f["rows"] for f in funnel], color="#4878a8"),
    )

    kept, dropped = counts["kept_tokens"], counts["rejected_tokens"]
    bins = np.linspace(0, max([1, *kept, *dropped]), 30)

    def lengths(ax: Any) -> None:
        ax.hist([kept, dropped], bins=bins, label=["kept", "dropped"], color=["#4c9a5a", "#c0504d"])
        ax.legend()

    save("lengths", "Lengths: kept vs dropped", "completion tokens", "rows", lengths)
    rates = [r for r in plan.pass_rates.values() if r is not None]
    save(
        "pass_rate",
        "Pass rate per prompt",
        "pass rate of the prompt's samples",
        "prompts",
        lambda ax: ax.hist(rates, bins=np.linspace(0, 1, 11), color="#8064a2"),
    )
    return made


def _markdown(report: dict[str, Any], plots: list[str], cfg: FilterConfig | None = None) -> str:
    lines = [
        "# Filter report",
        "",
        f"{report['kept']} of {report['rows']} rows kept.",
        "",
        *_input_lines(report, cfg),
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
    if report.get("cost"):
        from distill.filter.cost import cost_markdown

        lines += ["", *cost_markdown(report["cost"])]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def write_report(out: Path, counts: dict[str, Any], plan: Plan, cfg: FilterConfig) -> dict[str, Any]:
    from distill.filter.cost import cost_section, teacher_spent

    report = build_report(counts, plan)
    # the funnel in tokens and money: what the teacher spent, per kept row, per reject reason
    report["cost"] = cost_section(counts, teacher_spent(cfg.input.path, cfg.cost))
    plots = _plots(out, report, counts, plan)
    report["plots"] = plots
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    atomic_write_text(out / "report.md", _markdown(report, plots, cfg))
    return report
