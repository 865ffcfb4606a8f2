"""Engines: one interface in front of every way of sampling a model, used by generate (the
teacher), eval (the model under test, through generate) and verify's judge.

- `base`: the interface (`Engine.stream(requests, params) -> results`) and its records
- `factory`: `make_engine(cfg)`, the one place that picks an engine (heavy imports inside)
- `vllm_engine`: a local vLLM (GPU or CPU build); `openai_engine`: any OpenAI-compatible endpoint
- `config`: how to reach a model (the recipe's `teacher`, `model` and judge `engine` sections)

Engines import the trace format (`distill.trace`) and the ground floor, never a stage.
"""
