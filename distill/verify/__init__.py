"""Verification: one layer under filter, eval and generate that says whether an answer is right.

Every verifier has one call shape, `verify_many(rows) -> list[Verdict]` (a row is a trace dict:
`answer`, `content`, `reasoning`, `tests`, ...), and `dispatch.Verifiers` sends each row to the
verifier its domain names. Verdicts are tri-state (`verdict.Verdict`): an `error` is never a `fail`.

- `answers`: final-answer extraction and the answer-format policies (boxed, lenient)
- `math`: the math verifier: the pool of killable math-verify worker processes, its cache;
  `math_worker` (the rule: `reference_verdict`, and the workers' loop), `math_fast` (the fast path)
- `code` + `sandbox`: the row's tests in bubblewrap; `code_tests` reads the test formats of the
  public code sets (APPS/TACO, LiveCodeBench, HumanEval) and compares outputs as their checkers do
- `judge`: an LLM judge through the engines
- `config`: the recipe's `verify` section
"""
