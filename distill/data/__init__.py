"""Small built-in problem sets (`distill data ...`): `arithmetic`, the quickstart's problems,
written deterministically as prompt JSONL files; `command`: the CLI."""
