"""Reject reasons grouped for the report: a row's `reject_reason` names its own details (the row it
duplicates, the test case, the benchmark row); the report counts them per kind.

`reason_group(stage, reason)`:
- `verify`: the verdict and its reason up to the next colon, digits as `N`
  (`fail: wrong answer on case 3` -> `fail: wrong answer on case N`;
  `error: judge: unparsable output: ...` -> `error: judge`);
- `input` (rows of `rejects.jsonl`, repeated ids): the code, digits as `N`
  (`invalid UTF-8 at byte 17` -> `invalid UTF-8 at byte N`, `malformed JSON: ...` -> `malformed JSON`);
- `decontaminate`: the code and the benchmark file (`contaminated (gsm8k_test.jsonl)`);
- every other stage: the reason code, the text before the first colon
  (`near_duplicate: reasoning ~ s-12 (jaccard ~0.88)` -> `near_duplicate`).
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d+")
_BENCHMARK = re.compile(r"' with (.+) row \S+$")  # after the n-gram's repr (words only: no quote inside)


def reason_group(stage: str, reason: str) -> str:
    code, _, detail = reason.partition(":")
    if stage == "verify":
        return _DIGITS.sub("N", f"{code}: {detail.split(':')[0].strip()}" if detail else code)
    if stage == "input":
        return _DIGITS.sub("N", code)
    if stage == "decontaminate" and (m := _BENCHMARK.search(detail)):
        return f"{code} ({m.group(1)})"
    return code
