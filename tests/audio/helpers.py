"""Small helpers for the audio tests: trailer maps, per-movie JSON vectors and log lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FOLDERS = {"whisper": "audio_whisper", "ast": "audio_ast", "vggish": "audio_vggish"}


def write_map(path: Path, rows: list[tuple[str, object]], header: bool = True) -> Path:
    lines = (["movie_id\ttrailer_path"] if header else []) + [f"{movie_id}\t{source}" for movie_id, source in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def vectors(output: Path, model: str) -> dict[str, np.ndarray]:
    """Every JSON vector of one model's folder, by id."""
    found = {}
    for file in sorted((output / FOLDERS[model]).glob("*.json")):
        (movie_id, values), = json.loads(file.read_text()).items()
        found[movie_id] = np.asarray(values, np.float32)
    return found


def log_lines(output: Path, model: str) -> list[str]:
    """The log lines of one model without their timestamp: '<folder> <id> <status> <reason>'."""
    text = (output / f"log_{FOLDERS[model]}.txt").read_text(encoding="utf-8")
    return [line.split(" ", 1)[1] for line in text.splitlines()]
