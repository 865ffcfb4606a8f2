"""Verification: one layer under filter, eval and generate that says whether an answer is right.

Every verifier has one call shape, `verify_many(rows) -> list[Verdict]` (a row is a trace dict:
`answer`, `content`, `reasoning`, `tests`, ...), and `dispatch.Verifiers` sends each row to the
verifier its domain names. Verdicts are tri-state (`verdict.Verdict`): an `error` is never a `fail`.

- `answers`: final-answer extraction and the answer-format policies (boxed, lenient)
- `math`: math-verify in killable worker processes, the fast path, the reference rule
- `code` + `sandbox`: the row's tests in bubblewrap, in the formats of the public code sets
- `judge`: an LLM judge through the engines
- `config`: the recipe's `verify` section
"""
