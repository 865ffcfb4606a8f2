"""The eval stage: a model -> results.json (pass@1, pass@k, cons@k with 95% intervals).

- `run`: k samples per benchmark problem through generate's machinery (so it resumes the same
  way), verified with `distill.verify` (the filter's verifiers), scored, recorded with provenance
- `metrics`: pass@k, consensus, intervals; `report`: the terminal tables and `--compare`
- `config`: the recipe's `eval` section; `command`: `distill eval`
"""
