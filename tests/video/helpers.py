"""Small helpers for the video tests: the table's video models, running a script, reading a log."""

from __future__ import annotations

import subprocess
from pathlib import Path

from m3l.models import models_of
from tests.testlib import run_script

NAMES = [info.name for info in models_of("video")]
DIMS = {"slowfast": 2304, "mvit": 768, "r2p1d": 512}


def log_lines(output: Path, folder: str) -> list[str]:
    return (output / f"log_{folder}.txt").read_text().splitlines()


def run_ok(script: str, *args: object) -> subprocess.CompletedProcess:
    result = run_script(script, *args)
    assert result.returncode == 0, result.stderr
    return result
