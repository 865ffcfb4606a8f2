"""A local stand-in for the Hugging Face hub's HTTP API, for `distill push`'s tests: it records every
request huggingface_hub makes and answers enough of them for an upload to succeed: repo creation,
`preupload` (Parquet files as LFS, the rest inline), the LFS batch API (basic transfer), the LFS
uploads themselves (PUT) and the commit (NDJSON). The real hub is not reachable from the test
machines; what this checks is what huggingface_hub sends, not what the hub does with it."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[dict]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


@dataclass
class Hub:
    url: str
    requests: list[Request] = field(default_factory=list)
    lfs: dict[str, bytes] = field(default_factory=dict)  # oid -> the bytes PUT for it
    lfs_suffix: str | None = ".parquet"  # files `preupload` sends to LFS (None: every file inline)

    def find(self, method: str, contains: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and contains in r.path]


def start_hub(lfs_suffix: str | None = ".parquet") -> tuple[Hub, ThreadingHTTPServer]:
    """The hub on a free local port, served by a daemon thread (`server.shutdown()` stops it)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    hub = Hub(url=f"http://127.0.0.1:{server.server_address[1]}", lfs_suffix=lfs_suffix)
    server.hub = hub  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hub, server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _record(self) -> Request:
        size = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(size) if size else b""
        request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.hub.requests.append(request)  # type: ignore[attr-defined]
        return request

    def _read_chunked(self) -> bytes:
        out = b""
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def _send(self, status: int, doc: Any = None) -> None:
        data = json.dumps(doc if doc is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        request = self._record()
        hub: Hub = self.server.hub  # type: ignore[attr-defined]
        path = request.path.split("?")[0]
        if path == "/api/repos/create":
            doc = request.json()
            repo = f"{doc.get('organization')}/{doc['name']}"
            return self._send(200, {"url": f"{hub.url}/datasets/{repo}", "name": repo})
        if path == "/api/validate-yaml":  # the README's YAML header, checked before the commit
            return self._send(200, {"errors": [], "warnings": []})
        if "/preupload/" in path:
            files = request.json()["files"]
            modes = [
                {
                    "path": f["path"],
                    "uploadMode": "lfs"
                    if hub.lfs_suffix and f["path"].endswith(hub.lfs_suffix)
                    else "regular",
                    "shouldIgnore": False,
                }
                for f in files
            ]
            return self._send(200, {"files": modes, "commitOid": "0" * 40})
        if path.endswith("/info/lfs/objects/batch"):
            objects = [
                {
                    "oid": o["oid"],
                    "size": o["size"],
                    "authenticated": True,
                    "actions": {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}", "header": {}}},
                }
                for o in request.json()["objects"]
            ]
            return self._send(200, {"transfer": "basic", "objects": objects})
        if "/commit/" in path:
            repo = path.split("/api/datasets/")[1].split("/commit/")[0]
            oid = hashlib.sha1(request.body).hexdigest()
            return self._send(
                200,
                {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid, "success": True},
            )
        return self._send(404, {"error": f"not served by the test hub: POST {path}"})

    def do_PUT(self) -> None:
        request = self._record()
        if request.path.startswith("/lfs-upload/"):
            self.server.hub.lfs[request.path.rsplit("/", 1)[1]] = request.body  # type: ignore[attr-defined]
            return self._send(200)
        return self._send(404, {"error": f"not served by the test hub: PUT {request.path}"})

    def do_GET(self) -> None:
        request = self._record()
        return self._send(404, {"error": f"not served by the test hub: GET {request.path}"})


def inline_files(commit: Request) -> dict[str, bytes]:
    """The files a commit carries inline (`file` lines, base64), by path."""
    return {
        line["value"]["path"]: base64.b64decode(line["value"]["content"])
        for line in commit.ndjson()
        if line["key"] == "file"
    }


def lfs_files(commit: Request) -> dict[str, str]:
    """The LFS files a commit points to (`lfsFile` lines), path -> sha256."""
    return {
        line["value"]["path"]: line["value"]["oid"] for line in commit.ndjson() if line["key"] == "lfsFile"
    }
