"""The train stage: SFT rows -> a student model folder, with TRL's SFTTrainer on accelerate.

    distill train-student sft/ -o student/ [--recipe r.yaml] [--lora] [--resume]
    accelerate launch --config_file recipes/accelerate/zero3.yaml -m distill.cli train-student sft/ -o student/

The output folder is itself the model (config, safetensors, tokenizer, chat template, generation
config: `vllm serve student/` works), plus:
    checkpoints/checkpoint-N/   Trainer checkpoints (model, optimizer, scheduler, RNG, trainer_state.json)
    adapter/                    the LoRA adapter (with --lora)
    train_log.jsonl             one line per log step: loss, learning_rate, grad_norm, tokens_per_s, ...
    trainer_state.json          TRL/transformers' own log history
    dropped.jsonl               every dropped row: source file#row and reason
    run.json                    config and data fingerprint of the run (checked on --resume)
    manifest.json               data hash, config, runtime, versions, git commit, counts, timings
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import UserError
from distill.train.config import TrainConfig
from distill.train.data import (
    TOKENS_META,
    Conversations,
    data_fingerprint,
    load_tokens,
    read_conversations,
    tokenize_all,
)
from distill.train.template import TemplateChoice, choose_template, prepare_tokenizer

# Keys that may change between a run and its --resume; any other change is an error.
RESUMABLE_CHANGES = {"resume", "max_steps", "epochs", "save_steps", "logging_steps", "save_total_limit"}
RESUMABLE_CHANGES |= {"report_to", "num_proc", "ddp_timeout", "data", "output"}
TOKENIZER_CACHE = ".tokenized"
CACHE_POINTER = "current.json"  # written by rank 0: which read-*/ and tokenized folder this launch uses


def say(message: str) -> None:
    """A line for the user (main process only): on the terminal, above the progress rows."""
    if os.environ.get("RANK", "0") == "0":
        from distill.progress import say as progress_say

        progress_say(message)


@dataclass
class Prepared:
    """Everything the trainer needs, decided and tokenized (see `prepare`)."""

    config: TrainConfig
    out: Path
    model_path: str
    runtime: Any
    args: Any
    tokenizer: Any
    choice: TemplateChoice
    added_token_ids: list[int]
    conv: Conversations
    dataset: Any
    token_stats: dict[str, int]
    resume_from: str | None
    timings: dict[str, Any] = field(default_factory=dict)  # how the data was prepared: seconds, source


def prepare(config: TrainConfig) -> Prepared:
    """Check the output folder, resolve the student and the runtime, read and tokenize the data."""
    from transformers import AutoTokenizer

    from distill.models import resolve_model
    from distill.train.trainer import resolve_runtime, sft_args

    if not config.data:
        raise UserError("no training data: pass DATA (the sft/ folder of `distill filter`)")
    if not config.output:
        raise UserError("no output folder: pass -o/--output")
    out = Path(config.output).expanduser()
    model_path = resolve_model(config.model)
    runtime = resolve_runtime(config)
    args = sft_args(config, runtime, out / "checkpoints")
    resume_from = _check_output(config, out)
    args.distributed_state.wait_for_everyone()  # every process has checked before the main one writes

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the tokenizer of {config.model}: {str(exc).splitlines()[0]}") from None
    if not tokenizer.is_fast:
        raise UserError(f"{model_path}: training needs a fast (Rust) tokenizer for token offsets")
    try:
        # Rank 0 reads and tokenizes (or finds its cache); the others wait, then memory-map what it wrote.
        with args.main_process_first(local=False, desc="tokenize"):
            conv, choice, added, dataset, stats, timings = _prepare_data(config, tokenizer, out)
        if len(dataset) == 0:
            raise UserError(
                f"every row was dropped ({conv.drop_counts()}); raise max_length (now {config.max_length}) "
                "or set truncate: true"
            )
    except UserError:
        # A run that never started leaves nothing behind (a --resume keeps its cache).
        if os.environ.get("RANK", "0") == "0" and not config.resume:
            shutil.rmtree(out / TOKENIZER_CACHE, ignore_errors=True)
        raise
    p = Prepared(
        config, out, model_path, runtime, args, tokenizer, choice, added, conv, dataset, stats, resume_from
    )
    p.timings = timings
    return p


def _prepare_data(
    config: TrainConfig, tokenizer: Any, out: Path
) -> tuple[Conversations, TemplateChoice, list[int], Any, dict[str, int], dict[str, Any]]:
    """The tokenized data, from the files or from the cache in OUTPUT/.tokenized/:

        read-FINGERPRINT/   conversations.arrow (the usable rows, validated) + read.json (counts, drops, multi-turn)
        KEY/                tokens*.arrow (input_ids + labels of the kept rows) + meta.json (drops, token counts)
        current.json        rank 0's {fingerprint, key} for this launch

    Rank 0 (or the only process) hashes the files, reuses read-*/ and KEY/ when they match, else
    reads and tokenizes, then writes current.json. Every other rank runs after it
    (`main_process_first`) and, when current.json and its folders are there (a shared output
    folder), takes the counts and the template decision from read.json and memory-maps KEY/:
    it opens no data file. Without them (no shared folder, or rank 0 failed) it reads and
    tokenizes on its own, in .tokenized/rank-N/.
    """
    rank = int(os.environ.get("RANK", "0"))
    root = out / TOKENIZER_CACHE
    timings: dict[str, Any] = {}
    started = time.perf_counter()
    shared = _shared_cache(root) if rank else None
    if rank == 0:
        (root / CACHE_POINTER).unlink(missing_ok=True)
    work = root if rank == 0 else root / f"rank-{rank}"
    if shared is not None:
        conv = shared[0]
        timings["read"] = "rank 0's summary (no data file opened)"
    else:
        conv = _read(config.data, work, timings)
    if not conv.rows_kept:
        raise UserError(f"{config.data}: no usable conversation (dropped: {conv.drop_counts()})")
    if config.resume:
        _check_same_run(config, out, conv.fingerprint)
    choice = choose_template(tokenizer, config.chat_template, conv.multi_turn)
    if choice.warning:
        say(f"warning: {choice.warning}")
    added = prepare_tokenizer(tokenizer, choice)
    key = _cache_key(conv.fingerprint, tokenizer, choice, config)
    if shared is not None and (shared[1] != key or _tokens_meta(root / key) is None):
        conv = _read(config.data, work, timings)  # not what rank 0 tokenized: do it here
        shared = None
    cache = (root if shared is not None else work) / key
    meta_path = cache / TOKENS_META
    meta = _tokens_meta(cache)
    if meta is not None:
        t = time.perf_counter()
        conv.dropped, stats = meta["dropped"], meta["stats"]
        dataset = load_tokens(cache, meta["files"])
        timings["tokens"] = "rank 0's cache" if shared is not None else "cache"
        timings["load_s"] = round(time.perf_counter() - t, 3)
    else:
        t = time.perf_counter()
        dataset, stats = tokenize_all(
            conv,
            tokenizer,
            choice.template,
            config.max_length,
            config.truncate,
            config.num_proc,
            folder=cache,
            fingerprint=key,
        )
        timings["tokens"] = "tokenized"
        timings["tokenize_s"] = round(time.perf_counter() - t, 3)
        timings["num_proc"] = config.num_proc or 1
        if len(dataset):
            files = [Path(f["filename"]).name for f in dataset.cache_files]
            meta = {"dropped": conv.dropped, "stats": stats, "files": files, "rows": len(dataset)}
            meta_path.write_text(json.dumps(meta), encoding="utf-8")
    if rank == 0 and len(dataset):
        pointer = {"fingerprint": conv.fingerprint, "key": key}
        (root / CACHE_POINTER).write_text(json.dumps(pointer), encoding="utf-8")
    timings["prepare_s"] = round(time.perf_counter() - started, 3)
    return conv, choice, added, dataset, stats, timings


def _tokens_meta(cache: Path) -> dict[str, Any] | None:
    """meta.json of a tokenized folder, or None when there is none (or one of an older layout)."""
    path = cache / TOKENS_META
    if not path.is_file():
        return None
    meta = json.loads(path.read_text(encoding="utf-8"))
    return meta if "files" in meta else None


def _shared_cache(root: Path) -> tuple[Conversations, str] | None:
    """Rank 0's read summary and tokenized-cache key for this launch, or None when it left none."""
    pointer = root / CACHE_POINTER
    if not pointer.is_file():
        return None
    ref = json.loads(pointer.read_text(encoding="utf-8"))
    conv = Conversations.load(root / f"read-{ref['fingerprint']}", with_rows=False)
    return None if conv is None else (conv, ref["key"])


def _read(data: str, work: Path, timings: dict[str, Any]) -> Conversations:
    """The conversations of `data`, from work/read-FINGERPRINT/ when an earlier read left them there."""
    t = time.perf_counter()
    _files, fingerprint, _manifest = data_fingerprint(data)
    timings["fingerprint_s"] = round(time.perf_counter() - t, 3)
    folder = work / f"read-{fingerprint}"
    conv = Conversations.load(folder)
    if conv is not None:
        timings["read"] = "cache"
        return conv
    t = time.perf_counter()
    conv = read_conversations(data, folder)
    timings["read"] = "files"
    timings["read_s"] = round(time.perf_counter() - t, 3)
    return conv


def _cache_key(fingerprint: str, tokenizer: Any, choice: TemplateChoice, config: TrainConfig) -> str:
    """One tokenization per (data, tokenizer, template, length policy)."""
    return hashlib.sha256(
        json.dumps(
            [
                fingerprint,
                tokenizer.name_or_path,
                len(tokenizer),
                choice.template,
                config.max_length,
                config.truncate,
            ]
        ).encode()
    ).hexdigest()[:16]


def prepare_only(config: TrainConfig) -> dict[str, Any]:
    """`train-student --prepare-only`: read, tokenize and cache the data (OUTPUT/.tokenized/), load no model.

    A later `train-student` with the same data, student, template and length policy into the same
    folder starts from the cache; so does every process of a multi-process launch. Returns what
    was prepared (every process; rank 0's is the one shown).
    """
    from distill.progress import phase

    with phase("reading and tokenizing the data"):
        p = prepare(config)
    summary = {
        "rows_read": p.conv.rows_read,
        "rows_kept": len(p.dataset),
        "dropped": p.conv.drop_counts(),
        **p.token_stats,
        "cache": str(p.out / TOKENIZER_CACHE),
        "prepare": p.timings,
    }
    say(
        f"prepared {summary['rows_kept']} conversations ({summary['tokens']} tokens) in {summary['cache']}; "
        f"dropped: {summary['dropped']}"
    )
    return summary


def make_trainer(p: Prepared, callbacks: list[Any] | None = None) -> Any:
    from distill.progress import current
    from distill.train.logs import JsonlLogCallback, ProgressCallback
    from distill.train.trainer import build_trainer, load_student

    model = load_student(p.model_path, p.runtime, p.tokenizer)
    callbacks = [JsonlLogCallback(p.out / "train_log.jsonl"), *(callbacks or [])]
    if current() is not None:  # the stage's progress shows the steps (instead of tqdm)
        callbacks.append(ProgressCallback(current()))
    return build_trainer(p.config, p.args, model, p.tokenizer, p.dataset, p.added_token_ids, callbacks)


def train(config: TrainConfig, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Run the stage end to end; returns the manifest (also written to OUTPUT/manifest.json)."""
    from distill.progress import phase
    from distill.train.export import export, source_dtype

    started = time.time()
    with phase("reading and tokenizing the data"):
        p = prepare(config)
    kept, dropped = len(p.dataset), p.conv.drop_counts()
    say(
        f"training {config.model} on {kept} conversations ({p.token_stats['tokens']} tokens); dropped: {dropped}"
    )
    with phase(f"loading the student ({config.model})"):
        trainer = make_trainer(p, callbacks)
    if trainer.is_world_process_zero():  # the run starts: from here on the folder is this run's
        from distill.train.logs import write_json

        run = {"config": config.model_dump(mode="json"), "data_fingerprint": p.conv.fingerprint}
        write_json(p.out / "run.json", run)
        with open(p.out / "dropped.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(d) + "\n" for d in p.conv.dropped)
    if p.resume_from:
        say(f"resuming from {p.resume_from}")
    result = trainer.train(resume_from_checkpoint=p.resume_from)
    save_dtype = source_dtype(p.model_path)
    with phase("saving the model"):
        written = export(
            trainer, p.tokenizer, p.out, p.model_path, save_dtype, config.lora, config.merge_lora
        )
    if not trainer.is_world_process_zero():
        return {}
    trainer.state.save_to_json(str(p.out / "trainer_state.json"))
    manifest = _manifest(p, trainer, result, written, save_dtype, time.time() - started)
    from distill.train.logs import write_json

    write_json(p.out / "manifest.json", manifest)
    if manifest["training"]["completed"]:  # the tokenized copy only serves other processes and --resume
        shutil.rmtree(p.out / TOKENIZER_CACHE, ignore_errors=True)
    say(f"model written to {p.out} (steps {trainer.state.global_step}/{trainer.state.max_steps})")
    return manifest


def _check_output(config: TrainConfig, out: Path) -> str | None:
    """The checkpoint to resume from (None: start fresh); refuses to overwrite an earlier run."""
    from transformers.trainer_utils import get_last_checkpoint

    ckpt_dir = out / "checkpoints"
    if not config.resume:
        # Only our own leftovers of a run that never started (the tokenized data, the log) may be there.
        if out.exists() and (
            not out.is_dir() or any(f.name not in (TOKENIZER_CACHE, "logs") for f in out.iterdir())
        ):
            raise UserError(
                f"output folder {out} is not empty: pass --resume to continue its run, or pick another"
            )
        return None
    if not (out / "run.json").is_file():
        raise UserError(f"nothing to resume in {out} (no run.json): drop --resume to start a new run")
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last is None:
        say(f"warning: {out} has no checkpoint yet; starting from the beginning")
    return last


def _check_same_run(config: TrainConfig, out: Path, fingerprint: str) -> None:
    previous = json.loads((out / "run.json").read_text(encoding="utf-8"))
    if previous.get("data_fingerprint") != fingerprint:
        raise UserError(f"the training data changed since the run in {out} started; cannot resume")
    old, new = previous.get("config", {}), config.model_dump(mode="json")
    changed = sorted(
        k for k in set(old) | set(new) if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k)
    )
    if changed:
        raise UserError(
            f"cannot resume {out}: changed settings {', '.join(changed)} (only steps/epochs may change)"
        )


def _manifest(p: Prepared, trainer: Any, result: Any, written: dict, save_dtype: str, seconds: float) -> dict:
    from distill.models import model_revision
    from distill.provenance import git_commit, package_versions, utc_now
    from distill.train.logs import PACKAGES

    history = trainer.state.log_history
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    runtime_s = (result.metrics or {}).get("train_runtime")
    last = get_last_checkpoint_name(p.out)
    return {
        "stage": "train",
        "created_at": utc_now(),
        "git_commit": git_commit(dirty=True),
        "versions": package_versions(PACKAGES, base=(), keep_missing=True),
        "config": p.config.model_dump(mode="json"),
        "student": {
            "model": p.config.model,
            "path": p.model_path,
            "revision": model_revision(p.model_path),
            "saved_dtype": save_dtype,
        },
        "template": {
            "source": p.choice.source,
            "warning": p.choice.warning,
            "added_tokens": p.choice.added_tokens,
            "sha256": hashlib.sha256(p.choice.template.encode()).hexdigest()[:16],
        },
        "runtime": p.runtime.as_dict(),
        "data": {
            "path": str(p.config.data),
            "files": p.conv.files,
            "fingerprint": p.conv.fingerprint,
            "manifest_sha256": p.conv.manifest_sha256,
            "rows_read": p.conv.rows_read,
            "rows_kept": len(p.dataset),
            "dropped": p.conv.drop_counts(),
            **p.token_stats,
            "prepare": p.timings,
        },
        "training": {
            "global_step": trainer.state.global_step,
            "max_steps": trainer.state.max_steps,
            "completed": trainer.state.global_step >= trainer.state.max_steps,
            "resumed_from": p.resume_from,
            "train_loss": (result.metrics or {}).get("train_loss"),
            "train_rows": len(trainer.train_dataset),
            "tokens_this_session": tokens,
            "train_runtime_s": runtime_s,
            "tokens_per_s": round(tokens / runtime_s, 2) if tokens and runtime_s else None,
            "wall_s": round(seconds, 2),
        },
        "outputs": {
            **written,
            "checkpoints": "checkpoints",
            "last_checkpoint": last,
            "log": "train_log.jsonl",
            "trainer_state": "trainer_state.json",
            "dropped": "dropped.jsonl",
        },
    }


def get_last_checkpoint_name(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    ckpt_dir = out / "checkpoints"
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    return str(Path(last).relative_to(out)) if last else None
