"""The test web servers themselves: what they print must not leak into the stderr a test checks."""

from __future__ import annotations

import socket
import struct
import threading
import time

from tests.web import WebServer


def _wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_client_resetting_its_connection_prints_nothing(capsys):
    """collect_links.py gives up on a 401 with its body unread and closes: the connection is reset, the server's
    next read fails, and the standard library printed a traceback into the stderr that a test reads."""
    with WebServer() as web:
        web.files["/a.jpg"] = b"poster"
        threads = threading.active_count()
        with socket.create_connection(("127.0.0.1", int(web.url.rsplit(":", 1)[1]))) as client:
            client.sendall(b"GET /a.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b"poster"):
                answer += client.recv(4096)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        _wait_for(lambda: threading.active_count() == threads)  # the server has handled the reset
    assert capsys.readouterr().err == ""
