"""Download fixtures: the local web server (tests/web.py) serving mp4 files, and short generated trailers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.download.media import write_trailer
from tests.web import WebServer


@pytest.fixture
def web() -> WebServer:
    with WebServer() as running:
        yield running


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Two short trailers, different in size and length: one clip each for r2p1d's 32-frame window."""
    folder = tmp_path_factory.mktemp("clips")
    return {"a": write_trailer(folder / "a.mp4", 1.6), "b": write_trailer(folder / "b.mp4", 1.4, size="80x60")}
