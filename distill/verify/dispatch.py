"""The verifiers behind one door (filter, eval, `distill verify`): each row goes to the verifier its domain names.

Verifiers start lazily (math workers, the sandbox, the judge's engine) and only when a row needs
them. `error` verdicts are retried `error_retries` times; what is still an error stays an error
(the policy in the config decides whether such rows are excluded), never a `fail`.
"""

from __future__ import annotations

from typing import Any

from distill.verify.config import VerifyConfig
from distill.verify.verdict import Verdict


def verifier_of(row: dict[str, Any], cfg: VerifyConfig) -> str:
    """The verifier of a row's domain: math, code, judge or none (no domain: math)."""
    return cfg.domains.get(row.get("domain") or "math", "none")


def warm_up(cfg: VerifyConfig) -> None:
    """Start what takes long to start, without waiting: math-verify's worker processes, when some
    domain goes to math (~0.5 s of CPU in the background, wasted on an input without math rows)."""
    if "math" in cfg.domains.values():
        from distill.verify.math import warm_up as warm_up_math

        warm_up_math(cfg.math)


class Verifiers:
    def __init__(self, cfg: VerifyConfig):
        self.cfg = cfg
        self._math = self._code = self._judge = None

    def __enter__(self) -> Verifiers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for v in (self._math, self._judge):
            if v is not None:
                v.close()
        self._math = self._judge = None

    # --- the verifiers, built on first use --------------------------------------------------------

    def math(self):
        if self._math is None:
            from distill.verify.math import MathVerifier

            self._math = MathVerifier(self.cfg.math)
        return self._math

    def code(self):
        if self._code is None:
            from distill.verify.code import CodeVerifier

            self._code = CodeVerifier(self.cfg.code)
            self._check_sandbox(self._code)
        return self._code

    @staticmethod
    def _check_sandbox(verifier) -> None:
        """Run one trivial program: a sandbox that cannot start (e.g. a container without the
        flags bubblewrap needs) must stop the run, not turn every code row into an `error`."""
        from distill.errors import UserError

        probe = verifier.verify(
            "```python\nprint(int(input()) + 1)\n```", None, '[{"input": "1", "output": "2"}]'
        )
        if probe.status != "pass":
            raise UserError(
                f"the code sandbox does not work here ({probe.reason}); see docs/sandbox.md "
                "(and docs/docker.md for the container flags bubblewrap needs)"
            )

    def judge(self):
        if self._judge is None:
            from distill.verify.judge import LLMJudge

            self._judge = LLMJudge(self.cfg.judge)
        return self._judge

    def verifier(self, kind: str):
        """The verifier of one kind (math, code, judge), started on first use."""
        return {"math": self.math, "code": self.code, "judge": self.judge}[kind]()

    # --- verification -------------------------------------------------------------------------------

    def _run(self, kind: str, rows: list[dict[str, Any]]) -> list[Verdict]:
        return self.verifier(kind).verify_many(rows)

    def kind_of(self, row: dict[str, Any]) -> str:
        return verifier_of(row, self.cfg)

    def verify(self, rows: list[dict[str, Any]]) -> list[Verdict | None]:
        """A verdict per row, or None where the row's domain maps to no verifier."""
        out: list[Verdict | None] = [None] * len(rows)
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            kind = self.kind_of(row)
            if kind == "none":
                continue
            if kind in ("math", "judge") and not (row.get("answer") or "").strip():
                out[i] = Verdict.errored("no gold answer")
            elif kind == "code" and not row.get("tests"):
                out[i] = Verdict.errored("no tests")
            else:
                groups.setdefault(kind, []).append(i)
        for kind, idx in groups.items():
            for i, verdict in zip(idx, self._run(kind, [rows[i] for i in idx]), strict=True):
                out[i] = verdict
            for _ in range(self.cfg.error_retries):
                again = [i for i in idx if out[i] is not None and out[i].status == "error"]
                if not again:
                    break
                for i, verdict in zip(again, self._run(kind, [rows[i] for i in again]), strict=True):
                    out[i] = verdict
        return out
