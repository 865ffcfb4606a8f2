"""The funnel in cost: what the teacher spent on the input, what each kept SFT row cost, and what
each reject reason threw away.

The teacher's spending comes from the input folder's record (`distill generate` writes it:
`spent/`, summed in its manifest; see distill/cost.py), priced with the generate section's `cost`
(or the filter's own `cost`, which takes precedence). An input from another tool has no record:
then only the tokens of its rows are known (`completion_tokens`, else characters / 4).

A reject reason's cost is the completion tokens of the rows it dropped, and its share of the
input's completion tokens; its money is that share of the whole (prompt tokens, accelerator time
and all are attributed to rows in proportion to their completion tokens).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from distill.cost import Prices, money, total_spent


def teacher_spent(input_path: str | Path | None, prices: Prices | None) -> dict[str, Any] | None:
    """The generate folder's spending with prices applied, or None (not a generate folder)."""
    if not input_path:
        return None
    folder = Path(input_path)
    if not folder.is_dir():
        return None
    manifest: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if prices is None:
        recorded = ((manifest.get("info") or {}).get("config") or {}).get("cost")
        prices = Prices(**recorded) if isinstance(recorded, dict) else None
    spent = total_spent(folder, prices)
    if spent is None and isinstance(manifest.get("spent"), dict):
        spent = dict(manifest["spent"])
        if prices is not None and prices.priced:
            spent["prices"], spent["money"] = prices.model_dump(), money(spent, prices)
    return spent


def cost_section(counts: dict[str, Any], spent: dict[str, Any] | None) -> dict[str, Any]:
    """The report's `cost`: totals, per kept row, per reject reason (exact figures, not rounded
    beyond 6 decimals)."""
    kept_tokens = sum(counts["kept_tokens"])
    rows_tokens = kept_tokens + sum(counts["rejected_tokens"])
    kept = counts["kept"]
    teacher = {
        "source": "generate's record" if spent else "the input rows (no generate record)",
        "completion_tokens": spent["completion_tokens"] if spent else rows_tokens,
        "prompt_tokens": spent.get("prompt_tokens") if spent else None,
    }
    if spent:
        for key in ("requests", "wall_s", "cpu_s", "accelerators", "accelerator_hours", "runs"):
            teacher[key] = spent.get(key)
    amount = spent.get("money") if spent else None
    currency = (spent.get("prices") or {}).get("currency", "USD") if spent else "USD"
    total_tokens = teacher["completion_tokens"] + (teacher["prompt_tokens"] or 0)
    section: dict[str, Any] = {
        "teacher": teacher,
        "money": amount,
        "currency": currency if amount is not None else None,
        "kept_rows": kept,
        "per_kept_row": {
            "completion_tokens": _div(teacher["completion_tokens"], kept),
            "teacher_tokens": _div(total_tokens, kept),
            "money": _div(amount, kept) if amount is not None else None,
        },
        "rows_completion_tokens": rows_tokens,
        "kept": {"completion_tokens": kept_tokens, "share": _div(kept_tokens, rows_tokens)},
        "rejects": {},
    }
    for reason, tokens in sorted(counts["reason_tokens"].items(), key=lambda kv: (-kv[1], kv[0])):
        share = _div(tokens, rows_tokens)
        section["rejects"][reason] = {
            "rows": counts["reasons"][reason],
            "completion_tokens": tokens,
            "share": share,
            "money": round(amount * share, 6) if amount is not None and share is not None else None,
        }
    return section


def _div(a: float | None, b: float) -> float | None:
    return None if a is None or not b else round(a / b, 6)


def cost_markdown(cost: dict[str, Any]) -> list[str]:
    from distill.cost import fmt_money

    t, per = cost["teacher"], cost["per_kept_row"]
    cur = cost.get("currency") or "USD"
    priced = cost.get("money") is not None
    prompt = f"{t['prompt_tokens']:,} prompt + " if t.get("prompt_tokens") is not None else ""
    lines = [
        "## Cost",
        "",
        f"Teacher ({t['source']}): {prompt}{t['completion_tokens']:,} completion tokens"
        + (f", {fmt_money(cost['money'], cur)}" if priced else " (unpriced: set `cost` in the recipe)")
        + ".",
        "",
        f"Per kept SFT row ({cost['kept_rows']:,} rows): {_num(per['teacher_tokens'])} teacher tokens"
        + (f", {fmt_money(per['money'], cur)}" if per.get("money") is not None else "")
        + ".",
        "",
        "| where the completion tokens went | rows | completion tokens | share | "
        + ("money |" if priced else "|"),
        "| --- | ---: | ---: | ---: | " + ("---: |" if priced else ""),
    ]
    rows = [("kept", cost["kept_rows"], cost["kept"]["completion_tokens"], cost["kept"]["share"], None)]
    rows += [
        (r, v["rows"], v["completion_tokens"], v["share"], v["money"]) for r, v in cost["rejects"].items()
    ]
    for name, n, tokens, share, amount in rows:
        if priced and amount is None and share is not None:
            amount = round(cost["money"] * share, 6)
        pct = "" if share is None else f"{100 * share:.1f}%"
        lines.append(
            f"| {name} | {n:,} | {tokens:,} | {pct} | " + (f"{fmt_money(amount, cur)} |" if priced else "")
        )
    return lines


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.1f}"
