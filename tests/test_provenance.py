import hashlib
import os
import re
import subprocess
import sys

import pytest

from distill import provenance
from distill.provenance import (
    atomic_write_bytes,
    atomic_write_text,
    git_commit,
    package_versions,
    sha256_file,
    utc_now,
)


def test_utc_now_is_the_one_manifest_format():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_now())


def test_package_versions_records_python_first_and_skips_or_keeps_missing():
    got = package_versions(("pytest", "no-such-package-xyz"))
    assert list(got)[:2] == ["python", "distill"] and got["pytest"] == pytest.__version__
    assert "no-such-package-xyz" not in got
    kept = package_versions(("distill", "no-such-package-xyz"), base=(), keep_missing=True)
    assert list(kept) == ["python", "distill", "no-such-package-xyz"] and kept["no-such-package-xyz"] is None


def test_git_commit_of_this_checkout_and_the_dirty_flag():
    here = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=os.getcwd())
    if here.returncode != 0:
        pytest.skip("not a git checkout")
    commit = git_commit()
    assert commit is not None and re.fullmatch(r"[0-9a-f]{40}", commit)
    marked = git_commit(dirty=True)
    assert marked in (commit, commit + "-dirty")


def test_git_commit_without_git_is_none(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    assert git_commit() is None and git_commit(dirty=True) is None


def test_sha256_file(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc" * 1_000_000)
    assert sha256_file(f) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()


def test_atomic_writes_leave_the_whole_file_and_no_temporary(tmp_path):
    atomic_write_text(tmp_path / "a.json", "é\n")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "a.json", "second")  # replaces
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == "second"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]


def test_provenance_imports_nothing_heavy():
    code = "import sys, distill.provenance; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
