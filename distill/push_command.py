"""`distill push DIR --repo ORG/NAME`: upload a finished data set folder (a filter's `sft/` or
`pairs/`, a `distill mix` output) to the Hugging Face hub as a dataset repo, with its card.

A folder is pushed only when it is whole: its `manifest.json` says complete (every worker
finished), every shard it records is there with its recorded size and rows, and its dataset card
(`README.md`, which `distill filter` and `distill mix` write) is there. The token comes from
`HF_TOKEN` or `hf auth login`'s cache (huggingface_hub finds it); it is never printed or logged.
`--endpoint` (or `HF_ENDPOINT`) points at another hub. Tested against a local HTTP endpoint that
records huggingface_hub's requests (tests/test_push_command.py), not the real hub.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from distill.errors import UserError
from distill.shards import DATA_DIR, MANIFEST, WORKER_DIR, shard_ok

CARD = "README.md"  # the dataset card, as distill.filter.card writes it
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
IGNORE = [".*", "**/.*"]  # temporary files of an interrupted write (`.name.tmp-PID`)


def check_folder(folder: Path) -> dict[str, Any]:
    """The folder's manifest, if the folder is a whole data set with its card; else a UserError
    saying what is missing."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    if not (folder / DATA_DIR).is_dir() and (folder / "sft" / MANIFEST).is_file():
        raise UserError(
            f"{folder} is a filter output folder: push its data set, {folder / 'sft'} (or pairs/)"
        )
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        if (folder / WORKER_DIR).is_dir():
            raise UserError(
                f"{folder}: its workers have not all finished (no {MANIFEST}): finish its stage first"
            )
        raise UserError(f"{folder}: no {MANIFEST}: not a finished distill output folder")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{manifest_path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or not manifest.get("complete"):
        raise UserError(f"{manifest_path} does not say complete: finish its stage first")
    shards = manifest.get("shards")
    if not isinstance(shards, dict) or not shards:
        raise UserError(f"{manifest_path} records no shards: not a data set folder")
    for name, record in shards.items():
        if not shard_ok(folder / name, record):
            raise UserError(f"{folder / name}: missing or changed since its manifest was written")
    recorded = {Path(name).name for name in shards}
    extra = sorted(p.name for p in (folder / DATA_DIR).glob("*.parquet") if p.name not in recorded)
    if extra:
        raise UserError(f"{folder / DATA_DIR}: files its manifest does not record ({', '.join(extra[:3])})")
    if not (folder / CARD).is_file():
        raise UserError(
            f"{folder}: no dataset card ({CARD}); `distill filter` and `distill mix` write one beside "
            "the shards: make the folder again with this version"
        )
    return manifest


def push_folder(
    folder: Path, repo: str, *, private: bool = False, endpoint: str | None = None, log=print
) -> str:
    """Create the dataset repo (if needed) and upload `folder` to it; returns the repo's URL."""
    if not REPO_ID.match(repo):
        raise UserError(f"--repo {repo!r}: expected ORG/NAME (a user or organisation, then the set's name)")
    check_folder(folder)
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN, or run `hf auth login`")
    api = HfApi(endpoint=endpoint, token=token)

    def hidden(text: str) -> str:
        return text.replace(token, "***")

    try:
        url = api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        log(f"uploading {folder} to {url}")
        api.upload_folder(
            repo_id=repo,
            repo_type="dataset",
            folder_path=str(folder),
            ignore_patterns=list(IGNORE),
            commit_message=f"distill push: {folder.resolve().name}",
        )
    except Exception as exc:  # the hub's answer, the network, hf_xet: what the user must see, in one line
        lines = str(exc).strip().splitlines()
        detail = lines[0] if lines else type(exc).__name__
        if not isinstance(exc, HfHubHTTPError):
            detail = f"{type(exc).__name__}: {detail}"
        raise UserError(hidden(f"push to {repo} failed: {detail}")) from None
    return str(url)


def push_command(
    folder: Annotated[
        Path, typer.Argument(help="A data set folder: a filter's sft/ or pairs/, a mix output.")
    ],
    repo: Annotated[str, typer.Option("--repo", help="The dataset repo, ORG/NAME (created if missing).")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    endpoint: Annotated[
        str | None, typer.Option(help="The hub's URL [default: HF_ENDPOINT, else https://huggingface.co].")
    ] = None,
) -> None:
    """Upload a finished data set folder, with its dataset card, to the Hugging Face hub (token:
    HF_TOKEN or `hf auth login`)."""
    url = push_folder(folder, repo, private=private, endpoint=endpoint, log=lambda m: typer.echo(m, err=True))
    typer.echo(url)
