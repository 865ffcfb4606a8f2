"""The tri-state verdict every verifier returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["pass", "fail", "error"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """`pass` / `fail`, or `error` when the verifier could not decide (timeout, crash,
    unparsable gold, infrastructure). An `error` is never scored as a `fail`."""

    status: Status
    reason: str | None = None

    @classmethod
    def passed(cls, reason: str | None = None) -> Verdict:
        return cls("pass", reason)

    @classmethod
    def failed(cls, reason: str) -> Verdict:
        return cls("fail", reason)

    @classmethod
    def errored(cls, reason: str) -> Verdict:
        return cls("error", reason)
