"""A model hub of our own on 127.0.0.1: the part of the Hugging Face HTTP API that
`huggingface_hub.snapshot_download` uses, plus plain files for a download mirror.

- `GET /api/models/<repo>/revision/<rev>`: repo info with its commit (`sha`) and files;
- `GET /api/models/<repo>/tree/<rev>`: the file list (one page, no `Link` header);
- `HEAD|GET /<repo>/resolve/<rev>/<file>`: `X-Repo-Commit`, `ETag`, `Content-Length`, Range requests;
- `GET /mirror/<host>/<path>`: a file of `M3L_DOWNLOAD_MIRROR=<url>/mirror`, Range requests too.

Requests in absolute form (`GET http://host/...`, as sent to a proxy) are served the
same way and their host recorded, so the hub doubles as an HTTP proxy for the tests.
Faults on demand: every answer a status (`fail_status`), no answer at all (`hang`) or
none to the file listing only (`hang_listing`), a repo info of the wrong shape
(`revision_answer`), a connection dropped halfway through a file once (`cut_once`), slow
files (`delay`), files sent a byte at a time (`trickle`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlparse

from tests.local_http import LocalServer, QuietHandler

_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<kind>revision|tree)/(?P<rev>[^/]+)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


def read_folder(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


class Hub(LocalServer):
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.mirror: dict[str, bytes] = {}  # "<host>/<path>" -> content
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self.proxied_hosts: list[str] = []
        self.fail_status: int | None = None
        self.hang = False
        self.hang_listing = False
        self.revision_answer: bytes | None = None  # what the repo info answers instead of its JSON
        self.delay = 0.0
        self.trickle = 0.0  # seconds between the bytes of a file, when set
        self.cut_once: set[str] = set()  # paths whose next full GET is cut halfway
        super().__init__(_handler)

    def commit(self, repo: str) -> str:
        digest = hashlib.sha1()
        for name, content in sorted(self.repos[repo].items()):
            digest.update(name.encode() + hashlib.sha1(content).digest())
        return digest.hexdigest()

    def gets(self, suffix: str) -> list[str | None]:
        """The Range header of every GET of a path ending in `suffix` (None: a whole-file GET)."""
        return [rng for method, path, rng in self.requests if method == "GET" and path.endswith(suffix)]


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            target = urlparse(self.path)
            if target.netloc:
                hub.proxied_hosts.append(target.netloc)
            path = unquote(target.path)
            hub.requests.append((self.command, path, self.headers.get("Range")))
            if hub.hang or (hub.hang_listing and (match := _INFO.match(path)) and match["kind"] == "tree"):
                hub.stopping.wait(60)
                self.close_connection = True
                return
            if hub.fail_status:
                return self._reply(hub.fail_status, b"server trouble", {})
            if (match := _INFO.match(path)) and match["repo"] in hub.repos:
                return self._info(match["repo"], match["kind"], match["rev"])
            if (match := _RESOLVE.match(path)) and hub.repos.get(match["repo"], {}).get(match["file"]) is not None:
                repo = match["repo"]
                if match["rev"] not in ("main", hub.commit(repo)):
                    return self._reply(404, b"", {"X-Error-Code": "RevisionNotFound"})
                content = hub.repos[repo][match["file"]]
                headers = {"X-Repo-Commit": hub.commit(repo), "ETag": f'"{hashlib.sha256(content).hexdigest()}"'}
                return self._file(path, content, headers, body)
            if path.startswith("/mirror/") and path[len("/mirror/"):] in hub.mirror:
                return self._file(path, hub.mirror[path[len("/mirror/"):]], {}, body)
            self._reply(404, b"not found", {"X-Error-Code": "EntryNotFound"})

        def _info(self, repo: str, kind: str, revision: str) -> None:
            if kind == "revision" and hub.revision_answer is not None:
                return self._reply(200, hub.revision_answer, {"Content-Type": "application/json"})
            commit = hub.commit(repo)
            if revision not in ("main", commit):
                return self._reply(404, b"{}", {"X-Error-Code": "RevisionNotFound"})
            files = hub.repos[repo]
            if kind == "revision":
                data: object = {"id": repo, "modelId": repo, "sha": commit, "private": False,
                                "siblings": [{"rfilename": name} for name in files]}
            else:
                data = [{"type": "file", "path": name, "size": len(content), "oid": hashlib.sha1(content).hexdigest()}
                        for name, content in files.items()]
            self._reply(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

        def _file(self, path: str, content: bytes, headers: dict[str, str], body: bool) -> None:
            time.sleep(hub.delay)
            start = 0
            if (requested := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")) and body:
                start = int(requested[1])
                if start >= len(content):
                    return self._reply(416, b"", {"Content-Range": f"bytes */{len(content)}"})
                headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
            part = content[start:]
            if body and hub.trickle:
                self._send(206 if start else 200, {**headers, "Content-Length": str(len(part))})
                for byte in range(len(part)):
                    if hub.stopping.wait(hub.trickle):
                        break
                    self.wfile.write(part[byte:byte + 1])
                    self.wfile.flush()
                self.close_connection = True
                return
            if body and start == 0 and path in hub.cut_once:
                hub.cut_once.discard(path)
                self._send(200, {**headers, "Accept-Ranges": "bytes", "Content-Length": str(len(part))})
                self.wfile.write(part[: len(part) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._reply(206 if start else 200, part, {**headers, "Accept-Ranges": "bytes"}, body)

    return Handler
