"""distill: a distillation data factory. Prompts -> teacher traces -> verified SFT rows ->
a fine-tuned student -> eval results, each stage a folder with a manifest.

The layers (checked by `lint-imports`, drawn in docs/architecture.md), top to bottom:

- `cli`, the `*_command` modules and each stage's `command.py`: parse flags, load the recipe, call a stage
- `pipeline`: `distill run`, the stages of a recipe in order; `stages`: section name -> config model
- the stages: `generate`, `filter`, `train`, `eval` (which samples through generate), `data`
- `verify`: is an answer right (math, code, judge); `engines`: sampling a model (vLLM, OpenAI-compatible)
- the ground floor: `trace`, `prompts`, `text`, `schema`, `config`, `inputs`, `shards`,
  `provenance`, `models`, `progress`, `logs`, `memory`, `errors`
"""
