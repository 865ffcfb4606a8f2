"""The stage end to end on the tiny student: CLI, output folder, logs, manifest, LoRA, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from transformers import TrainerCallback
from typer.testing import CliRunner

from distill.errors import UserError
from distill.train.command import train_student_command
from distill.train.logs import read_log
from distill.train.run import train

from .conftest import gsm8k_rows, write_jsonl


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(train_student_command)
    return app


class StopAt(TrainerCallback):
    """Simulates an interrupted run: stop after `step` optimizer steps (after its checkpoint)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(out / "train_log.jsonl") if "loss" in r}


def test_cli_run_writes_a_loadable_model(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = gsm8k_rows(12)
    rows[3]["messages"][1]["content"] = "<think>\n" + "long " * 800 + "\n</think>\n\n1"
    data = write_jsonl(tmp_path / "sft" / "rows.jsonl", [*rows, "{broken"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  global_batch_size: 2\n  logging_steps: 1\n  learning_rate: 0.001\n")
    out = tmp_path / "student"
    args = [str(data), "-o", str(out), "--recipe", str(recipe), "--model", tiny_model]
    result = CliRunner().invoke(cli_app(), [*args, "--max-length", "512", "--max-steps", "3"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert result.stdout.strip().endswith(str(out))

    # A Hugging Face folder: weights, config, tokenizer, chat template, generation config.
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "generation_config.json",
    ):
        assert (out / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.num_hidden_layers == 2 and model.dtype == torch.float32
    assert tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    gen = model.generate(
        **tokenizer("<|im_start|>user\nhi<|im_end|>\n", return_tensors="pt"), max_new_tokens=3
    )
    assert gen.shape[1] > 0
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] in (2, [2])

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["dropped"] == {"bad_json": 1, "too_long": 1}
    assert manifest["data"]["rows_kept"] == 11 and manifest["data"]["fingerprint"]
    assert manifest["training"]["global_step"] == 3 and manifest["training"]["completed"]
    assert manifest["config"]["max_length"] == 512 and manifest["config"]["learning_rate"] == 0.001
    assert manifest["runtime"]["grad_accum"] == 2 and manifest["template"]["source"] == "model"
    assert manifest["versions"]["trl"] and "git_commit" in manifest
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert {d["reason"] for d in dropped} == {"bad_json", "too_long"}

    log = read_log(out / "train_log.jsonl")
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for key in ("loss", "learning_rate", "grad_norm", "tokens_per_s", "num_tokens"):
        assert all(key in r for r in steps), key
    assert (out / "trainer_state.json").is_file() and (out / "checkpoints" / "checkpoint-3").is_dir()

    # A second run into the same folder is refused rather than clobbering it.
    again = CliRunner().invoke(cli_app(), [*args, "--max-steps", "1"])
    assert isinstance(again.exception, UserError) and "not empty" in str(again.exception)


def test_epochs_and_max_steps_are_exclusive(tmp_path):
    result = CliRunner().invoke(
        cli_app(), [str(tmp_path), "-o", str(tmp_path / "o"), "--epochs", "1", "--max-steps", "2"]
    )
    assert isinstance(result.exception, UserError) and "either --epochs or --max-steps" in str(
        result.exception
    )


def test_missing_data_is_a_user_error(tiny_model, tmp_path):
    result = CliRunner().invoke(
        cli_app(), [str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--model", tiny_model]
    )
    assert isinstance(result.exception, UserError) and "not found" in str(result.exception)


def test_everything_dropped_is_a_user_error(tiny_config):
    config = tiny_config(max_length=32)
    with pytest.raises(UserError, match="every row was dropped"):
        train(config)
    assert not Path(config.output).exists() or not any(Path(config.output).iterdir())  # nothing left behind


def test_lora_saves_adapter_and_merged_model(tiny_config, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = tiny_config(lora=True, max_steps=2, lora_settings={"r": 4, "alpha": 8})
    manifest = train(config)
    out = Path(config.output)
    assert manifest["outputs"]["adapter"] == "adapter" and manifest["outputs"]["model"] == "."
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(config.model)
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(config.model), out / "adapter"
    )
    ids = torch.tensor([[1, 4093, 198, 1780, 314, 216, 34]])
    with torch.no_grad():
        merged_logits = merged(ids).logits
        torch.testing.assert_close(merged_logits, with_adapter(ids).logits, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(merged_logits, base(ids).logits, atol=1e-4)  # the adapter learned something


def test_lora_without_merge_keeps_only_the_adapter(tiny_config):
    config = tiny_config(lora=True, merge_lora=False, max_steps=1)
    manifest = train(config)
    out = Path(config.output)
    assert manifest["outputs"]["model"] is None
    assert (out / "adapter" / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()


def test_resume_runs_exactly_the_remaining_steps(tiny_config, tmp_path):
    whole = tiny_config(output=str(tmp_path / "whole"))
    train(whole)
    reference = losses(Path(whole.output))
    assert sorted(reference) == [1, 2, 3, 4]

    config = tiny_config(output=str(tmp_path / "cut"))
    first = train(config, callbacks=[StopAt(2)])
    assert first["training"]["global_step"] == 2 and not first["training"]["completed"]
    out = Path(config.output)
    assert sorted(losses(out)) == [1, 2]

    resumed = train(config.model_copy(update={"resume": True}))
    assert resumed["training"]["resumed_from"].endswith("checkpoint-2")
    assert resumed["training"]["global_step"] == 4 and resumed["training"]["completed"]
    log = [r for r in read_log(out / "train_log.jsonl") if "loss" in r]
    assert [r["step"] for r in log] == [1, 2, 3, 4]  # steps 3 and 4 ran, once each
    # Same data order and RNG: the resumed losses continue the uninterrupted run's.
    for step in (1, 2, 3, 4):
        assert losses(out)[step] == pytest.approx(reference[step], rel=1e-4), step


def test_resume_refuses_changed_data_or_settings(tiny_config, tmp_path):
    config = tiny_config(max_steps=1)
    train(config)
    with pytest.raises(UserError, match="learning_rate"):
        train(config.model_copy(update={"resume": True, "learning_rate": 0.5}))
    data = Path(config.data)
    data.write_text(data.read_text() + json.dumps(gsm8k_rows(1, start=50)[0]) + "\n")
    with pytest.raises(UserError, match="data changed"):
        train(config.model_copy(update={"resume": True}))
    with pytest.raises(UserError, match="nothing to resume"):
        train(config.model_copy(update={"resume": True, "output": str(tmp_path / "fresh")}))


def test_unloadable_student_is_a_user_error(tiny_config, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(UserError, match="cannot load"):
        train(tiny_config(model=str(broken)))
    with pytest.raises(UserError, match="not found"):
        train(tiny_config(model=str(tmp_path / "missing-model")))


def test_prepare_only_then_train_starts_from_the_cache(tiny_config, tiny_model, sft_data, tmp_path):
    out = tmp_path / "out"
    args = [str(sft_data), "-o", str(out), "--model", tiny_model, "--max-length", "512", "--prepare-only"]
    result = CliRunner().invoke(cli_app(), args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "prepared 24 rows" in result.output
    assert {f.name for f in out.iterdir()} <= {".tokenized", "logs"}  # no model, no manifest
    manifest = train(tiny_config(max_steps=1, output=str(out)))  # the folder still counts as fresh
    prepare = manifest["data"]["prepare"]
    assert prepare["read"] == "cache" and prepare["tokens"] == "cache" and "tokenize_s" not in prepare
    assert manifest["data"]["rows_kept"] == 24 and manifest["data"]["rows_read"] == 24
    assert not (out / ".tokenized").exists()  # removed once the run completed
