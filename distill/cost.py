"""What a stage spent, and what it cost: tokens, time, accelerators, and money where priced.

A stage that samples a model (generate, eval) records each run of each worker in
`OUT/spent/worker-IIIII.json` (`record_run`): the requests that came back and their prompt tokens (and how
many of them the engine's prefix cache served) and completion tokens, wall and process time, and the accelerators it held. `total_spent` adds them
up for the manifest. A recipe may price them (`Prices`): per million input and output tokens for
an endpoint, per accelerator-hour for a local engine; `money` applies the prices.

Tokens of requests that were in flight when a run was killed are not known and not counted.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from distill.config import StrictModel
from distill.provenance import atomic_write_text, utc_now

SPENT_DIR = "spent"
COUNTERS = (
    "requests",
    "prompt_tokens",
    "prompt_cached_tokens",
    "completion_tokens",
    "wall_s",
    "cpu_s",
    "accelerator_hours",
)


class Prices(StrictModel):
    """Prices for what a stage spends. Unset prices count as unpriced (no money shown), not as 0."""

    input_per_million: float | None = Field(None, ge=0, description="Per million prompt (input) tokens.")
    output_per_million: float | None = Field(None, ge=0, description="Per million completion tokens.")
    accelerator_hour: float | None = Field(
        None, ge=0, description="Per accelerator (GPU) hour, for local engines and training."
    )
    currency: str = Field("USD", description="Shown beside the amounts.")

    @property
    def priced(self) -> bool:
        return any(
            p is not None for p in (self.input_per_million, self.output_per_million, self.accelerator_hour)
        )


class Meter:
    """Wall and process time of this process and its finished children since it was made."""

    def __init__(self) -> None:
        self.started_at = utc_now()
        self._wall = time.monotonic()
        self._cpu = _cpu_seconds()

    def read(self) -> tuple[float, float]:
        return time.monotonic() - self._wall, _cpu_seconds() - self._cpu


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def record_run(
    root: Path,
    worker: int,
    meter: Meter,
    *,
    requests: int,
    prompt_tokens: int,
    completion_tokens: int,
    prompt_cached_tokens: int = 0,
    accelerators: int | None,
    complete: bool,
) -> dict[str, Any]:
    """Record this run in the worker's record (atomically) and return it. Called again by the same
    run (same meter), it replaces the run's entry: a stage notes its spending as it goes, so that a
    SIGKILL loses only what came after the last note."""
    wall, cpu = meter.read()
    run = {
        "started_at": meter.started_at,
        "finished_at": utc_now(),
        "complete": complete,
        "requests": requests,
        "prompt_tokens": prompt_tokens,
        "prompt_cached_tokens": prompt_cached_tokens,  # of prompt_tokens: prefix-cache hits
        "completion_tokens": completion_tokens,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "accelerators": accelerators,
        "accelerator_hours": round((accelerators or 0) * wall / 3600, 6),
        "pid": os.getpid(),
    }
    folder = Path(root) / SPENT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"worker-{worker:05d}.json"
    doc = _read(path) or {"runs": []}
    doc["runs"] = [
        r for r in doc["runs"] if (r.get("started_at"), r.get("pid")) != (run["started_at"], run["pid"])
    ]
    doc["runs"].append(run)
    atomic_write_text(path, json.dumps(doc, indent=1))
    return run


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("runs"), list) else None


def total_spent(root: Path, prices: Prices | None = None) -> dict[str, Any] | None:
    """Every worker's runs added up, with money where priced; None when nothing was recorded."""
    runs = []
    for path in sorted((Path(root) / SPENT_DIR).glob("worker-*.json")):
        doc = _read(path)
        if doc:
            runs += doc["runs"]
    if not runs:
        return None
    total: dict[str, Any] = {k: 0 for k in COUNTERS}
    for run in runs:
        for k in COUNTERS:
            total[k] += run.get(k) or 0
    total = {k: round(v, 6) if isinstance(v, float) else v for k, v in total.items()}
    total["runs"] = len(runs)
    accelerators = {r.get("accelerators") for r in runs}
    total["accelerators"] = max((a for a in accelerators if a is not None), default=None)
    if prices is not None and prices.priced:
        total["prices"] = prices.model_dump()
        total["money"] = money(total, prices)
    return total


def money(spent: dict[str, Any], prices: Prices) -> float:
    """The priced parts of `spent` (tokens, accelerator-hours) at `prices`."""
    amount = 0.0
    if prices.input_per_million is not None:
        amount += (spent.get("prompt_tokens") or 0) * prices.input_per_million / 1e6
    if prices.output_per_million is not None:
        amount += (spent.get("completion_tokens") or 0) * prices.output_per_million / 1e6
    if prices.accelerator_hour is not None:
        amount += (spent.get("accelerator_hours") or 0) * prices.accelerator_hour
    return round(amount, 6)


def fmt_money(amount: float | None, currency: str = "USD") -> str:
    if amount is None:
        return "unpriced"
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency)
    text = f"{amount:,.4f}" if amount < 1 else f"{amount:,.2f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency}"
