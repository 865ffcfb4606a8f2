"""Results as terminal tables: one model, or two side by side (teacher vs student), with 95%
intervals over problems (normal approximation, see distill/eval/metrics.py)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from distill.eval.metrics import INTERVAL_NOTE, paired_difference, pass1_interval


def _metric_names(*results: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for res in results:
        for bench in res["benchmarks"].values():
            names += [m for m in bench["metrics"] if m not in names]
    return names


def _num_samples(bench: dict[str, Any]) -> int | None:
    if "num_samples" in bench:
        return bench["num_samples"]
    if bench.get("problems"):
        return sum(len(p.get("samples") or []) for p in bench["problems"])
    if "samples_per_problem" in bench and "num_problems" in bench:
        return bench["samples_per_problem"] * bench["num_problems"]
    return None


def results_table(results: dict[str, Any]) -> Table:
    metrics = _metric_names(results)
    table = Table(
        title=f"{results['model']} (k={results['sampling']['num_samples']}, "
        f"T={results['sampling']['temperature']}, top-p={results['sampling']['top_p']})",
        caption=f"pass@1 95% CI: {INTERVAL_NOTE}",
    )
    table.add_column("benchmark")
    table.add_column("problems", justify="right")
    table.add_column("samples", justify="right")
    for m in metrics:
        table.add_column(m, justify="right")
        if m == "pass@1":
            table.add_column("pass@1 95% CI", justify="right")
    for name, bench in results["benchmarks"].items():
        cells = []
        for m in metrics:
            cells.append(_fmt(bench["metrics"].get(m)))
            if m == "pass@1":
                cells.append(_ci(pass1_interval(bench)))
        samples = _num_samples(bench)
        table.add_row(name, str(bench["num_problems"]), "-" if samples is None else str(samples), *cells)
    return table


def comparison_table(a: dict[str, Any], b: dict[str, Any], label_a: str, label_b: str) -> Table:
    """Metrics of A and B per benchmark and B − A; below pass@1, A's and B's 95% intervals over
    their problems. The paired interval of B − A is `paired_table`'s."""
    table = Table(
        title=f"A: {a['model']} ({label_a})   B: {b['model']} ({label_b})",
        caption=f"95% CI: {INTERVAL_NOTE}",
    )
    for col in ("benchmark", "metric", "A", "B", "B - A"):
        table.add_column(col, justify="left" if col in ("benchmark", "metric") else "right")
    for name in _benchmark_names(a, b):
        bench_a, bench_b = a["benchmarks"].get(name, {}), b["benchmarks"].get(name, {})
        ma, mb = bench_a.get("metrics", {}), bench_b.get("metrics", {})
        for m in [m for m in _metric_names(a, b) if m in ma or m in mb]:
            va, vb = ma.get(m), mb.get(m)
            delta = f"{vb - va:+.3f}" if va is not None and vb is not None else "-"
            table.add_row(name, m, _fmt(va), _fmt(vb), delta)
            if m == "pass@1":
                ci_a, ci_b = pass1_interval(bench_a), pass1_interval(bench_b)
                if ci_a is not None or ci_b is not None:
                    table.add_row(name, "pass@1 95% CI", _ci(ci_a), _ci(ci_b), "")
    return table


def paired_table(a: dict[str, Any], b: dict[str, Any]) -> Table:
    """Per benchmark in both: pass@1 of B − A over the problems both hold (matched by id), its
    paired 95% interval, whether that excludes 0, and how many problems only one side holds."""
    notes: list[str] = []
    table = Table(
        title="pass@1, B - A paired over the problems in both",
        caption="95% CI: normal approximation, mean ± 1.96 SE of the per-problem differences "
        "(B - A of mean correctness)",
    )
    for col in ("benchmark", "paired", "only A", "only B", "B - A", "95% CI", "excl. 0"):
        table.add_column(col, justify="left" if col == "benchmark" else "right")
    for name in _benchmark_names(a, b):
        if name not in a["benchmarks"] or name not in b["benchmarks"]:
            continue
        p = paired_difference(a, b, name)
        excludes = "-" if p["excludes_zero"] is None else ("yes" if p["excludes_zero"] else "no")
        table.add_row(
            name,
            str(p["n_problems"]),
            str(p["only_a"]),
            str(p["only_b"]),
            _fmt(p["diff"], signed=True),
            "-" if p["lo"] is None else f"[{p['lo']:+.3f}, {p['hi']:+.3f}]",
            excludes,
        )
        if p["same_file"] is False:
            notes.append(f"{name}: A and B used different benchmark files (sha256 differ)")
        if p["reason"]:
            notes.append(f"{name}: {p['reason']}")
    if notes:
        table.caption = "\n".join([str(table.caption), *notes])
    return table


def _benchmark_names(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [n for n in a["benchmarks"] if n in b["benchmarks"]] + [
        n for n in b["benchmarks"] if n not in a["benchmarks"]
    ]


def _ci(ci: dict[str, Any] | None) -> str:
    if ci is None or ci.get("lo") is None:
        return "-"
    return f"[{ci['lo']:.3f}, {ci['hi']:.3f}]"


def _fmt(value: float | None, signed: bool = False) -> str:
    return "-" if value is None else f"{value:+.3f}" if signed else f"{value:.3f}"
