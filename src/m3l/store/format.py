"""The on-disk format of the features: per-movie JSON files, log lines, consolidated tables.

`<output>/<folder>/<id>.json` holds `{id: [dim finite numbers]}`; `<output>/log_<folder>.txt`
holds one line per event, `<timestamp> <model> <id> <status> <reason>`.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from m3l.catalog import printable
from m3l.models import ModelInfo


def parse_vector(raw: bytes, movie_id: str, dim: int) -> list[float] | None:
    """The vector of a per-movie JSON file, or None unless it is exactly `{id: [dim finite numbers]}`."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    vector = data.get(movie_id) if isinstance(data, dict) and len(data) == 1 else None
    if not isinstance(vector, list) or len(vector) != dim:
        return None
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in vector):
        return None
    return vector


def log_line(model: str, movie_id: str, status: str, reason: str) -> str:
    """`<timestamp> <model> <id> <status> <reason>`: one line, the first four fields free of spaces."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    shown_id = (movie_id if movie_id.isprintable() else printable(movie_id)).replace(" ", "\\x20") or '""'
    return f"{stamp} {model} {shown_id} {status} {' '.join(reason.split())}\n"


def read_folder(output: Path, info: ModelInfo) -> tuple[list[str], np.ndarray]:
    """All complete vectors of one model's JSON folder, in file-name order."""
    folder = Path(output) / info.folder
    ids, vectors = [], []
    for file in sorted(folder.glob("*.json")):
        vector = parse_vector(file.read_bytes(), file.stem, info.dim)
        if vector is not None:
            ids.append(file.stem)
            vectors.append(vector)
    return ids, np.asarray(vectors, dtype=np.float32).reshape(len(vectors), info.dim)
