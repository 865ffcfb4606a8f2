"""Results as terminal tables: one model, or two side by side (teacher vs student)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _metric_names(*results: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for res in results:
        for bench in res["benchmarks"].values():
            names += [m for m in bench["metrics"] if m not in names]
    return names


def results_table(results: dict[str, Any]) -> Table:
    metrics = _metric_names(results)
    table = Table(
        title=f"{results['model']} (k={results['sampling']['num_samples']}, "
        f"T={results['sampling']['temperature']}, top-p={results['sampling']['top_p']})"
    )
    table.add_column("benchmark")
    table.add_column("problems", justify="right")
    for m in metrics:
        table.add_column(m, justify="right")
    for name, bench in results["benchmarks"].items():
        table.add_row(name, str(bench["num_problems"]), *[_fmt(bench["metrics"].get(m)) for m in metrics])
    return table


def comparison_table(a: dict[str, Any], b: dict[str, Any], label_a: str, label_b: str) -> Table:
    table = Table(title=f"A: {a['model']} ({label_a})   B: {b['model']} ({label_b})")
    for col in ("benchmark", "metric", "A", "B", "B - A"):
        table.add_column(col, justify="left" if col in ("benchmark", "metric") else "right")
    for name in [n for n in a["benchmarks"] if n in b["benchmarks"]] + [
        n for n in b["benchmarks"] if n not in a["benchmarks"]
    ]:
        ma = a["benchmarks"].get(name, {}).get("metrics", {})
        mb = b["benchmarks"].get(name, {}).get("metrics", {})
        for m in [m for m in _metric_names(a, b) if m in ma or m in mb]:
            va, vb = ma.get(m), mb.get(m)
            delta = f"{vb - va:+.3f}" if va is not None and vb is not None else "-"
            table.add_row(name, m, _fmt(va), _fmt(vb), delta)
    return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
