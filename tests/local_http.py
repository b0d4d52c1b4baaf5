"""What the test web servers share: a threaded HTTP/1.1 server on 127.0.0.1 run in a thread, and a quiet handler.

A client hanging up is no error there: a client that closes a kept-alive connection with an answer unread
(a 401 it gave up on) resets it, and the standard library's server would print a traceback into the
stderr that a test reads."""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a reset when it closes with an answer unread) is no error; anything else is
        printed, as the standard library does."""
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class LocalServer:
    """Serves with the handler class `handler(self)` makes, over TLS with `tls`; `stopping` is set when the server
    stops, so that a handler told to hang returns then."""

    def __init__(self, handler: Callable[[Any], type[BaseHTTPRequestHandler]], tls: ssl.SSLContext | None = None
                 ) -> None:
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), handler(self))
        self._scheme = "https" if tls else "http"
        if tls:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, content: bytes, headers: dict[str, str], body: bool | None = None) -> None:
        """A whole answer; its body unless `body` is False (default: unless the request is a HEAD)."""
        self._send(status, {**headers, "Content-Length": str(len(content))})
        if self.command != "HEAD" if body is None else body:
            self.wfile.write(content)

    def _send(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
