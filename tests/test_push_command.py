"""`distill push DIR --repo ORG/NAME`: the upload, against a local HTTP endpoint that records what
huggingface_hub sends (tests/hub_server.py; the real hub cannot be reached from the test machines),
and the folders it refuses, each with one line and no traceback."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.filter.card import CardConfig
from distill.filter.config import FilterConfig
from distill.filter.run import run_filter
from distill.push_command import check_folder, push_folder
from tests.conftest import DISTILL
from tests.filter.helpers import quickstart_traces
from tests.hub_server import inline_files, lfs_files, start_hub

TOKEN = "hf_pushTestToken0123456789abcdef"


@pytest.fixture(scope="module")
def sft(tmp_path_factory) -> Path:
    """A filter's sft/ folder with its card (the quickstart's shape, in-process)."""
    root = tmp_path_factory.mktemp("push")
    traces = quickstart_traces(root / "generate", prompts=6)
    cfg = FilterConfig(
        input=str(traces), output=str(root / "filter"), workers=1, card=CardConfig(license="apache-2.0")
    )
    run_filter(cfg, log=lambda m: None)
    return root / "filter" / "sft"


@pytest.fixture
def hub():
    hub, server = start_hub()
    yield hub
    server.shutdown()


def _push_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "home" / "hf"), HF_TOKEN=TOKEN)
    env.update(HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return env


def _push(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DISTILL, "push", str(folder), *args], capture_output=True, text=True, env=env, timeout=120
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def test_push_uploads_the_folder_with_its_card_through_lfs(sft, hub, tmp_path):
    """hf_xet switched off: the LFS path (preupload, batch, PUT, commit), all of it recorded."""
    (sft / "data" / ".train-00000-of-00002.parquet.tmp-1").write_bytes(b"partial")  # never uploaded
    env = _push_env(tmp_path, HF_HUB_DISABLE_XET="1")
    out = _push(sft, env, "--repo", "my-org/arith-sft", "--private", "--endpoint", hub.url)
    (sft / "data" / ".train-00000-of-00002.parquet.tmp-1").unlink()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{hub.url}/datasets/my-org/arith-sft"
    assert TOKEN not in out.stdout + out.stderr

    create = hub.find("POST", "/api/repos/create")
    assert [r.json() for r in create] == [
        {"name": "arith-sft", "organization": "my-org", "visibility": "private", "type": "dataset"}
    ]
    # every request to the hub's API carries the token; the LFS uploads go to the URLs it handed out
    assert all(
        r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests if r.method == "POST"
    )
    (commit,) = hub.find("POST", "/api/datasets/my-org/arith-sft/commit/main")
    local = _files(sft)
    inline, lfs = inline_files(commit), lfs_files(commit)
    assert sorted({*inline, *lfs}) == sorted(local)  # the whole folder, nothing else
    assert "README.md" in inline and "manifest.json" in inline
    assert sorted(lfs) == sorted(json.loads(local["manifest.json"])["shards"])  # the shards, as LFS
    for path, oid in lfs.items():
        assert oid == hashlib.sha256(local[path]).hexdigest()
        assert hub.lfs[oid] == local[path]  # the bytes PUT are the shard's
    for path, data in inline.items():
        assert data == local[path]
    assert inline["README.md"].decode().startswith("---\nlicense: apache-2.0\n")


def test_push_through_the_default_pipelined_upload(sft, tmp_path):
    """hf_xet on (huggingface_hub's default): its pipelined upload and commit, with a hub that takes
    every file inline (the xet storage protocol itself is not served by the test hub)."""
    hub, server = start_hub(lfs_suffix=None)
    try:
        out = _push(sft, _push_env(tmp_path, HF_ENDPOINT=hub.url), "--repo", "me/arith")
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stderr
    assert TOKEN not in out.stdout + out.stderr
    assert [r.json()["visibility"] for r in hub.find("POST", "/api/repos/create")] == ["public"]
    files = {}
    for commit in hub.find("POST", "/api/datasets/me/arith/commit/main"):
        files.update(inline_files(commit))
    assert files == _files(sft)


def test_a_hub_error_is_one_line_without_the_token(sft, tmp_path):
    hub, server = start_hub()
    server.shutdown()  # nothing listens: the push fails
    server.server_close()
    out = _push(sft, _push_env(tmp_path, HF_HUB_DISABLE_XET="1"), "--repo", "me/arith", "--endpoint", hub.url)
    assert out.returncode == 2
    assert "error: push to me/arith failed" in out.stderr
    assert "Traceback" not in out.stderr and TOKEN not in out.stdout + out.stderr


def test_the_token_of_hf_auth_login_is_used(sft, hub, tmp_path):
    """No HF_TOKEN: the token `hf auth login` saved (HF_HOME/token) goes in the header, not the output."""
    env = _push_env(tmp_path, HF_HUB_DISABLE_XET="1")
    del env["HF_TOKEN"]
    Path(env["HF_HOME"]).mkdir(parents=True)
    (Path(env["HF_HOME"]) / "token").write_text(TOKEN)
    out = _push(sft, env, "--repo", "me/arith", "--endpoint", hub.url)
    assert out.returncode == 0, out.stderr
    assert TOKEN not in out.stdout + out.stderr
    (create,) = hub.find("POST", "/api/repos/create")
    assert create.headers["authorization"] == f"Bearer {TOKEN}"
    assert hub.find("POST", "/api/datasets/me/arith/commit/main")


def test_no_token_is_a_clear_error(sft, tmp_path):
    env = _push_env(tmp_path)
    del env["HF_TOKEN"]
    out = _push(sft, env, "--repo", "me/arith", "--endpoint", "http://127.0.0.1:9")
    assert out.returncode == 2 and "no Hugging Face token" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda d: (d / "manifest.json").unlink(), "have not all finished"),
        (lambda d: (shutil.rmtree(d / "manifests"), (d / "manifest.json").unlink()), "no manifest.json"),
        (lambda d: _edit_manifest(d, complete=False), "does not say complete"),
        (lambda d: (d / "README.md").unlink(), "no dataset card"),
        (lambda d: (d / "data" / "train-00001-of-00002.parquet").unlink(), "missing or changed"),
        (lambda d: (d / "data" / "extra.parquet").write_bytes(b"x"), "does not record"),
    ],
    ids=["workers-unfinished", "no-manifest", "incomplete", "no-card", "shard-missing", "extra-file"],
)
def test_an_incomplete_folder_is_refused(sft, tmp_path, break_it, message):
    folder = tmp_path / "sft"
    shutil.copytree(sft, folder)
    check_folder(folder)  # whole before
    break_it(folder)
    with pytest.raises(UserError, match=message):
        push_folder(folder, "me/arith", endpoint="http://127.0.0.1:9")


def test_a_filter_folder_points_to_its_sft(sft):
    with pytest.raises(UserError, match="push its data set"):
        check_folder(sft.parent)


def test_a_bad_repo_name_is_refused(sft):
    with pytest.raises(UserError, match="expected ORG/NAME"):
        push_folder(sft, "just-a-name")


def test_the_refusal_on_the_command_line_is_one_line(tmp_path):
    out = _push(tmp_path, _push_env(tmp_path), "--repo", "me/arith")
    assert out.returncode == 2
    assert "no manifest.json" in out.stderr and "Traceback" not in out.stderr


def _edit_manifest(folder: Path, **changes) -> None:
    doc = json.loads((folder / "manifest.json").read_text())
    doc.update(changes)
    (folder / "manifest.json").write_text(json.dumps(doc))
