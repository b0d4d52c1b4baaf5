"""A web server of our own on 127.0.0.1 for the download scripts: files, faults on demand, a fake TMDB API.

- `files[path] = bytes`: served with `Content-Type` from `types` (default image/jpeg),
  `Content-Length`, and Range requests (`bytes=a-` and `bytes=a-b`);
- `faults[path] = [Fault, ...]`: the next requests of `path` answer these, one each, in order,
  before the file itself is served: a status with headers (429 + Retry-After, 500, a redirect,
  a Content-Length of their own) and a body, a body cut short (`cut`), trickling in (`trickle`),
  or no answer at all (`hang`, until the server stops);
- `tmdb[tmdb_id] = {"details": {...}, "videos": [...]}`: `GET /3/movie/<id>` (with the videos
  under `videos` when `append_to_response=videos`) and `GET /3/movie/<id>/videos`; 404 for
  other ids, 401 without the `api_key` parameter or a bearer token equal to `key`;
- `redirects[path] = location`: a 302 every time; `unsized`: files sent without Content-Length
  (the body ends with the connection);
- `sent[path]`: body bytes written; `ranges`: the (path, Range header) of every GET;
  `no_ranges`: files whose Range headers are ignored (as Python's http.server does);
  `throttle[path]`: seconds of sleep after each 64 KB; `send_buffer`: the sockets' send buffer,
  small when `sent` must be close to what the client read (what the kernel takes from a client
  that stopped reading is counted too);
- requests in absolute form (`GET http://host/path`, as sent to a proxy) are served the
  same way and their host recorded, so the server doubles as a proxy.

`requests` records every request (method, path, query): tests count what was asked.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlparse

from tests.local_http import LocalServer, QuietHandler

_TMDB = re.compile(r"^/3/movie/(?P<id>\d+)(?P<videos>/videos)?$")


@dataclass
class Fault:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    cut: bool = False  # send Content-Length of the whole file, then half of it, then close (or hang, with `hang`)
    hang: bool = False  # accept, read the request, never answer (until the server stops)
    trickle: bool = False  # send Content-Length of the whole file, then a byte every 0.1 s


class WebServer(LocalServer):
    def __init__(self, key: str = "test-key", delay: float = 0.0, tls: ssl.SSLContext | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.types: dict[str, str] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.tmdb: dict[int, dict] = {}
        self.redirects: dict[str, str] = {}  # path -> Location, answered 302 every time
        self.unsized: set[str] = set()  # files sent without Content-Length, their bytes counted in `sent`
        self.sent: dict[str, int] = {}
        self.ranges: list[tuple[str, str | None]] = []
        self.no_ranges: set[str] = set()
        self.throttle: dict[str, float] = {}
        self.send_buffer: int | None = None
        self.key = key
        self.delay = delay  # seconds before each answer (a CDN's round trip)
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.proxied_hosts: list[str] = []
        self.auth_headers: list[str | None] = []
        self._lock = threading.Lock()
        super().__init__(_handler, tls)

    def gets(self, path: str) -> int:
        """How many GETs of `path` arrived."""
        return sum(1 for method, seen, _ in self.requests if method == "GET" and seen == path)

    def next_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(path)
            return queue.pop(0) if queue else None


def _handler(web: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def setup(self) -> None:
            super().setup()
            if web.send_buffer:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, web.send_buffer)

        def do_GET(self) -> None:
            target = urlparse(self.path)
            if target.netloc:
                web.proxied_hosts.append(target.netloc)
            path, query = unquote(target.path), parse_qs(target.query)
            web.requests.append(("GET", path, query))
            web.ranges.append((path, self.headers.get("Range")))
            web.auth_headers.append(self.headers.get("Authorization"))
            time.sleep(web.delay)
            if path in web.redirects:
                return self._reply(302, b"", {"Location": web.redirects[path]})
            fault = web.next_fault(path)
            if fault and fault.hang and not fault.cut:
                web.stopping.wait(60)
                self.close_connection = True
                return
            if fault and not (fault.cut or fault.trickle):  # its headers win, a Content-Length too
                self._send(fault.status, {"Content-Length": str(len(fault.body)), **fault.headers})
                return self._stream(path, fault.body)
            if (match := _TMDB.match(path)) is not None:
                return self._tmdb(int(match["id"]), bool(match["videos"]), query)
            if path not in web.files:
                return self._reply(404, b"not found", {"Content-Type": "text/plain"})
            content = web.files[path]
            headers = {"Content-Type": web.types.get(path, "image/jpeg"), "Accept-Ranges": "bytes"}
            if fault and fault.trickle:
                self._send(200, {**headers, "Content-Length": str(len(content))})
                self.close_connection = True
                with suppress(OSError):  # until the client hangs up
                    for byte in range(len(content)):
                        self.wfile.write(content[byte:byte + 1])
                        self.wfile.flush()
                        if web.stopping.wait(0.1):
                            return
                return
            if fault:  # cut
                self._send(200, {**headers, "Content-Length": str(len(content))})
                self.wfile.write(content[: len(content) // 2])
                self.wfile.flush()
                if fault.hang:
                    web.stopping.wait(60)
                self.close_connection = True
                return
            if path in web.unsized:  # no Content-Length: the body ends when the connection closes
                self._send(200, {**headers, "Connection": "close"})
                self.close_connection = True
                return self._stream(path, content)
            self._file(path, content, headers)

        def _file(self, path: str, content: bytes, headers: dict[str, str]) -> None:
            requested = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if not requested or path in web.no_ranges:
                self._send(200, {**headers, "Content-Length": str(len(content))})
                return self._stream(path, content)
            start = int(requested[1])
            end = min(int(requested[2]) if requested[2] else len(content) - 1, len(content) - 1)
            if start >= len(content):
                return self._reply(416, b"", {"Content-Range": f"bytes */{len(content)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            self._send(206, {**headers, "Content-Length": str(end + 1 - start)})
            self._stream(path, content[start:end + 1])

        def _stream(self, path: str, body: bytes) -> None:
            """The body 64 KB at a time, counted in `sent`, at the pace `throttle` sets."""
            with suppress(OSError):  # the client may hang up first: a size cap or a cut stops reading
                for start in range(0, len(body), 1 << 16):
                    self.wfile.write(body[start:start + (1 << 16)])
                    web.sent[path] = web.sent.get(path, 0) + min(1 << 16, len(body) - start)
                    time.sleep(web.throttle.get(path, 0))

        def _tmdb(self, tmdb_id: int, videos: bool, query: dict[str, list[str]]) -> None:
            if query.get("api_key") != [web.key] and self.headers.get("Authorization") != f"Bearer {web.key}":
                return self._json(401, {"success": False, "status_code": 7, "status_message": "Invalid API key"})
            if tmdb_id not in web.tmdb:
                return self._json(404, {"success": False, "status_code": 34, "status_message": "Not found"})
            movie, results = web.tmdb[tmdb_id], {"results": web.tmdb[tmdb_id].get("videos", [])}
            if videos:
                return self._json(200, {"id": tmdb_id, **results})
            appended = {"videos": results} if "videos" in query.get("append_to_response", [""])[0].split(",") else {}
            self._json(200, {"id": tmdb_id, **movie["details"], **appended})

        def _json(self, status: int, data: object) -> None:
            self._reply(status, json.dumps(data).encode(), {"Content-Type": "application/json;charset=utf-8"})

    return Handler
