"""Reading the extractors' per-movie JSON files in tests, with json directly (never through m3l)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def read_vector(folder: Path, movie_id: str) -> np.ndarray:
    """The vector of `folder/<movie_id>.json`, a file whose one key is the id."""
    data = json.loads((folder / f"{movie_id}.json").read_text())
    assert list(data) == [movie_id], f"{folder / movie_id}.json holds {list(data)}"
    return np.asarray(data[movie_id], dtype=np.float32)


def read_vectors(folder: Path) -> dict[str, np.ndarray]:
    """Every per-movie JSON vector of one model's output folder, by id."""
    return {file.stem: read_vector(folder, file.stem) for file in sorted(folder.glob("*.json"))}
