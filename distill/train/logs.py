"""What a training run leaves behind besides weights: the JSONL log, the progress row, and its
JSON files (the manifest's provenance comes from distill.provenance)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distill.provenance import atomic_write_text

# the packages a training manifest records (None: not installed)
PACKAGES = (
    "distill",
    "torch",
    "transformers",
    "trl",
    "accelerate",
    "peft",
    "datasets",
    "liger-kernel",
    "flash-attn",
)


class JsonlLogCallback(TrainerCallback):
    """One JSON line per trainer log (main process only): step, loss, learning rate, grad norm, tokens/s, ...

    tokens/s counts real tokens (no padding): TRL's `num_tokens` sums the attention mask, or the
    flattened length when packing.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._last_tokens = 0.0
        self._last_time = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_tokens, self._last_time = 0.0, time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        now = time.perf_counter()
        record: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        record.update({k: v for k, v in logs.items() if isinstance(v, int | float | str)})
        tokens = logs.get("num_tokens")
        if tokens is not None and "loss" in logs:
            elapsed = now - self._last_time
            record["tokens_per_s"] = round((tokens - self._last_tokens) / elapsed, 2) if elapsed > 0 else None
            self._last_tokens, self._last_time = tokens, now
        record["time"] = round(time.time(), 3)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


class ProgressCallback(TrainerCallback):
    """Training on the stage's progress (distill.progress, main process only): optimizer steps
    done of the total, the last logged loss, real tokens per second and an ETA. Replaces the
    trainer's own tqdm bar (the trainer then only prints its log dicts, into the stage's log)."""

    def __init__(self, progress: Any):
        self.progress = progress
        self.task: Any = None
        self._last_tokens = 0.0
        self._last_time = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self._last_tokens, self._last_time = 0.0, time.perf_counter()
        self.task = self.progress.add_task(
            "training (steps)", total=state.max_steps, completed=state.global_step, loss="", tok_s=""
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.task is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.task is None or not logs:
            return
        fields: dict[str, str] = {}
        if isinstance(logs.get("loss"), int | float):
            fields["loss"] = f"loss {logs['loss']:.4f}"
        tokens = logs.get("num_tokens")
        if tokens is not None and "loss" in logs:
            now = time.perf_counter()
            if now > self._last_time and tokens >= self._last_tokens:
                fields["tok_s"] = f"{(tokens - self._last_tokens) / (now - self._last_time):,.0f} tok/s"
            self._last_tokens, self._last_time = tokens, now
        if fields:
            self.progress.update(self.task, completed=state.global_step, **fields)

    def on_train_end(self, args, state, control, **kwargs):
        if self.task is not None:
            self.progress.update(self.task, completed=state.global_step, total=state.global_step)
            self.task = None


def read_log(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_json(path: Path, data: Any) -> None:
    """A run's JSON file (run.json, manifest.json), written atomically; its folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
