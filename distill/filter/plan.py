"""The filter's second pass: decisions that need every row at once, made from small columns only.

Per-prompt pass rates, the difficulty band, exact and near-duplicate removal (survivors are
deterministic: passing rows first, then the shortest, then by id), per-prompt selection and
preference pairs. Returns a decision per row id; texts never enter memory here, only the MinHash
signatures (the LSH index). The stage reads the keys from its work shards (`work.read_keys`);
`plan_of_rows` makes them from rows held in memory (tests, benchmarks), on the same path.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from distill.filter.config import FilterConfig
from distill.filter.dedup import (
    ExactDedup,
    NearDedup,
    duplicate_prompts,
    exact_duplicate_reason,
    near_duplicate_reason,
    prompt_duplicate_reason,
    rows_sharing_a_band,
)


@dataclass
class Keys:
    """The second pass's view of every row (columns of the work shards, concatenated)."""

    ids: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    verdicts: list[str | None] = field(default_factory=list)
    stage1: list[str | None] = field(default_factory=list)  # reject stage from the first pass
    reasons1: list[str | None] = field(default_factory=list)  # and its reason
    lengths: list[int] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    signatures: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint32))  # a row each
    problems: dict[str, str] = field(default_factory=dict)  # prompt id -> problem (for dedup.prompts)
    bounds: list[tuple[int, int]] = field(default_factory=list)  # each work shard's [start, stop)

    def preference(self, i: int) -> tuple[bool, int, str]:
        """Row i's place in the survivor order: passing rows first, then the shortest, then by id."""
        return self.verdicts[i] != "pass", self.lengths[i], self.ids[i]

    @classmethod
    def of_rows(cls, rows: Sequence[Mapping[str, Any]], features: Mapping[str, Any]) -> Keys:
        """The keys of rows held in memory, with their `features` (`distill.filter.features`); each
        row's verdict and first-pass reject stage and reason as it carries them (None if absent)."""
        keys = cls(
            ids=[str(row["id"]) for row in rows],
            prompts=[row.get("prompt_id") for row in rows],
            verdicts=[row.get("verdict") for row in rows],
            stage1=[row.get("reject_stage") for row in rows],
            reasons1=[row.get("reject_reason") for row in rows],
            lengths=list(features["lengths"]),
            digests=list(features["digests"]),
            signatures=features["signatures"],
            bounds=[(0, len(rows))],
        )
        for row in rows:
            keys.problems.setdefault(row.get("prompt_id"), row.get("problem") or "")
        return keys


@dataclass
class Plan:
    decisions: dict[str, tuple[str, str]]  # row id -> (reject stage, reason), second-pass rejects only
    pass_rates: dict[str, float | None]  # prompt id -> passed / (passed + failed)
    pairs: list[tuple[str, str, str]]  # (prompt id, chosen row id, rejected row id)


def pass_rates_of(keys: Keys) -> dict[str, float | None]:
    """passed / (passed + failed) per prompt, over its samples, rejected ones too (the teacher's
    success rate), but not rows rejected at input (a repeated id: no sample of its own)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for pid, verdict, stage in zip(keys.prompts, keys.verdicts, keys.stage1, strict=True):
        c = counts[pid]
        if stage == "input":
            continue
        if verdict == "pass":
            c[0] += 1
        elif verdict == "fail":
            c[1] += 1
    return {pid: (p / (p + f) if p + f else None) for pid, (p, f) in counts.items()}


def _drop_duplicate_prompts(
    keys: Keys, alive: list[int], cfg: FilterConfig, decisions: dict[str, tuple[str, str]]
) -> list[int]:
    """`dedup.prompts`: a prompt whose problem near-duplicates an earlier prompt's loses all its
    samples. Prompts come in the order of their most preferred sample (`alive` is sorted), so the
    prompt with the best sample survives."""
    pids = [keys.prompts[i] for i in alive]
    duplicate_of = duplicate_prompts(((pid, keys.problems.get(pid) or "") for pid in pids), cfg.dedup)
    survivors = []
    for i, pid in zip(alive, pids, strict=True):
        if (other := duplicate_of[pid]) is None:
            survivors.append(i)
        else:
            decisions[keys.ids[i]] = ("dedup", prompt_duplicate_reason(pid, other))
    return survivors


def make_plan(keys: Keys, cfg: FilterConfig) -> Plan:
    rates = pass_rates_of(keys)
    decisions: dict[str, tuple[str, str]] = {}
    alive = [i for i, stage in enumerate(keys.stage1) if stage is None]

    band = cfg.select.difficulty
    if band is not None:
        lo, hi = band
        survivors = []
        for i in alive:
            rate = rates.get(keys.prompts[i])
            if rate is None or not lo <= rate <= hi:
                shown = "n/a" if rate is None else f"{rate:.2f}"
                decisions[keys.ids[i]] = (
                    "difficulty",
                    f"outside_band: pass rate {shown} not in [{lo}, {hi}]",
                )
            else:
                survivors.append(i)
        alive = survivors

    # Preferred rows first: passing, then shortest, then by id. The first copy of a duplicate survives.
    alive.sort(key=keys.preference)
    d = cfg.dedup
    if d.prompts and alive:
        alive = _drop_duplicate_prompts(keys, alive, cfg, decisions)
    exact = ExactDedup(d.scope) if d.exact else None
    near = NearDedup(d) if d.near else None
    # Rows that share no LSH band with another row never meet in the index: they skip it (same
    # result; the index then holds only the few rows that share a band, not every kept one).
    if near is not None and alive:
        shared = rows_sharing_a_band(keys.signatures, d.bands, d.rows, np.array(alive)).tolist()
    else:
        shared = [False] * len(alive)
    survivors = []
    for i, may_match in zip(alive, shared, strict=True):
        rid, group = keys.ids[i], keys.prompts[i]
        if exact is not None and (other := exact.add_digest(rid, keys.digests[i], group)):
            decisions[rid] = ("dedup", exact_duplicate_reason(d.field, other))
            continue
        if may_match and near is not None and (other := near.add_signature(rid, keys.signatures[i], group)):
            decisions[rid] = ("dedup", near_duplicate_reason(d.field, other, near.last_similarity))
            continue
        survivors.append(i)

    by_prompt: dict[str, list[int]] = defaultdict(list)
    for i in survivors:  # already in preference order
        by_prompt[keys.prompts[i]].append(i)
    k = cfg.select.max_per_prompt
    kept: dict[str, list[int]] = {}
    for pid, rows in by_prompt.items():
        if cfg.select.rule == "random":
            rows = sorted(rows, key=lambda i: keys.ids[i])
            random.Random(f"{cfg.select.seed}:{pid}").shuffle(rows)
        limit = len(rows) if k == "all" else k
        kept[pid] = rows[:limit]
        for i in rows[limit:]:
            decisions[keys.ids[i]] = ("select", f"max_per_prompt={k}: {limit} of {len(rows)} kept")

    pairs = []
    if cfg.select.preference_pairs:
        failing: dict[str, list[int]] = defaultdict(list)
        for i, verdict in enumerate(keys.verdicts):
            if verdict == "fail" and keys.stage1[i] != "input":  # not a copy with a repeated id
                failing[keys.prompts[i]].append(i)
        for pid, rows in kept.items():
            chosen = next((i for i in rows if keys.verdicts[i] == "pass"), None)
            if chosen is not None and failing.get(pid):
                worst = max(failing[pid], key=lambda i: (keys.lengths[i], keys.ids[i]))  # longest wrong one
                pairs.append((pid, keys.ids[chosen], keys.ids[worst]))
    return Plan(decisions, rates, sorted(pairs))


def plan_of_rows(
    rows: Sequence[Mapping[str, Any]], cfg: FilterConfig, processes: int = 1, chunk: int = 256
) -> tuple[Keys, Plan]:
    """`make_plan` of rows held in memory, on the stage's own path: their features (as the first
    pass computes them, in `processes` worker processes, `chunk` rows a task; readability is not
    applied), `Keys.of_rows`, `make_plan`. For tests and benchmarks: the stage reads its keys from
    the work shards."""
    from distill.filter.features import features
    from distill.filter.readability import FILTER_NAMES, ReadabilityConfig

    off = ReadabilityConfig(**dict.fromkeys(FILTER_NAMES, False))
    compute = partial(features, readability=off, dedup=cfg.dedup)
    parts = [list(rows[i : i + chunk]) for i in range(0, len(rows), chunk)]
    if processes > 1 and len(parts) > 1:
        with ProcessPoolExecutor(processes) as pool:
            done = list(pool.map(compute, parts))
    else:
        done = [compute(part) for part in parts]
    merged = {
        "lengths": [n for d in done for n in d["lengths"]],
        "digests": [x for d in done for x in d["digests"]],
        "signatures": np.concatenate([d["signatures"] for d in done])
        if done
        else np.zeros((0, cfg.dedup.num_perm), np.uint32),
    }
    keys = Keys.of_rows(rows, merged)
    return keys, make_plan(keys, cfg)
