"""The generate stage: prompts -> teacher traces, as sealed Parquet shards with a manifest.

- `run`: `run_generate`, sharding, exactly-once resume, the trace rows (TRACE_SCHEMA)
- `parallel`: vLLM data parallelism on one machine (several engines, disjoint shards)
- `config`: the recipe's `generate` section; `command`: `distill generate`

The prompt format is the ground floor's `distill.prompts`; the engines are `distill.engines`.
Eval reuses `run_generate` to sample its benchmarks.
"""
