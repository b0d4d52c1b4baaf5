"""The on-disk format of the features, read and written only here.

Under an output root, per model:
- `<folder>/<id>.json` holds `{id: [dim finite numbers]}` (`parse_vector` reads one);
- `log_<folder>.txt` holds one line per event, `<timestamp> <model> <id> <status> <reason>`
  (`log_line` writes one, `parse_log_line` reads one);
- `<modality>_embeddings_<name>.parquet` and `.h5` hold the consolidated table: column or
  dataset `movie_id` / `movie_ids` (int64 when every id is an integer, else strings) and
  `embedding` / `embeddings` (float32), sorted by `id_order` (`write_table`, `read_table`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from m3l.catalog import printable
from m3l.models import ModelInfo

TABLE_SUFFIXES = {"hdf5": ".h5", "parquet": ".parquet"}  # in the order readers prefer them


def parse_vector(raw: bytes, movie_id: str, dim: int) -> np.ndarray | str:
    """The float32 vector of a per-movie JSON file, or the problem that keeps it from being one.

    A file is sound only when it is exactly `{movie_id: [dim finite numbers]}`.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        return "files that do not parse"
    if not isinstance(data, dict) or list(data) != [movie_id] or not isinstance(data[movie_id], list):
        return "files that are not {id: [...]} for their own id"
    values = data[movie_id]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
        return "files with values that are not numbers"
    if len(values) != dim:
        return f"wrong length (not {dim})"
    try:
        vector = np.asarray(values, dtype=np.float64)
    except OverflowError:
        return "NaN or Inf values"
    if not np.isfinite(vector).all():
        return "NaN or Inf values"
    return vector.astype(np.float32)


def is_numeric_id(movie_id: str) -> bool:
    return movie_id.isascii() and movie_id.isdigit()


def canonical_id(movie_id: object) -> str:
    """An id as every reader returns it: a string, integers written without leading zeros."""
    text = str(movie_id)
    return str(int(text)) if is_numeric_id(text) else text


def id_order(ids: list[str]) -> list[int]:
    """The permutation that sorts ids like the consolidated tables: numerically when every id is
    an integer (ASCII digits), else as strings."""
    if ids and all(map(is_numeric_id, ids)):
        return sorted(range(len(ids)), key=lambda k: int(ids[k]))
    return sorted(range(len(ids)), key=ids.__getitem__)


def read_folder(output: Path, info: ModelInfo) -> tuple[list[str], np.ndarray]:
    """All sound vectors of one model's JSON folder, in file-name order."""
    ids, vectors = [], []
    for file in sorted((Path(output) / info.folder).glob("*.json")):
        vector = parse_vector(file.read_bytes(), file.stem, info.dim)
        if not isinstance(vector, str):
            ids.append(file.stem)
            vectors.append(vector)
    return ids, np.asarray(vectors, dtype=np.float32).reshape(len(vectors), info.dim)


def log_path(output: Path | str, info: ModelInfo) -> Path:
    return Path(output) / f"log_{info.folder}.txt"


def log_line(model: str, movie_id: str, status: str, reason: str) -> str:
    """`<timestamp> <model> <id> <status> <reason>`: one line, the first four fields free of spaces."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    shown_id = (movie_id if movie_id.isprintable() else printable(movie_id)).replace(" ", "\\x20") or '""'
    return f"{stamp} {model} {shown_id} {status} {' '.join(reason.split())}\n"


@dataclass(frozen=True)
class LogEntry:
    timestamp: str
    model: str
    movie_id: str
    status: str  # skipped, failed, recompute, warning
    reason: str


def parse_log_line(line: str) -> LogEntry | None:
    """The entry a `log_line` wrote, or None for a line of another shape."""
    parts = line.split(maxsplit=4)
    return LogEntry(*parts, *[""] * (5 - len(parts))) if len(parts) >= 4 else None


def read_log_file(path: Path) -> Iterator[LogEntry]:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        entry = parse_log_line(line)
        if entry is not None:
            yield entry


def table_paths(output: Path | str, info: ModelInfo) -> dict[str, Path]:
    """Source → the consolidated table of that format, in the order readers prefer them."""
    return {source: Path(output) / f"{info.consolidated_name}{suffix}" for source, suffix in TABLE_SUFFIXES.items()}


def write_table(source: str, path: Path, ids: list[str], vectors: np.ndarray,
                metadata: Mapping[str, str] | None = None) -> None:
    """Write ids and their vectors, in the order given, as a consolidated table of `source`'s format.

    `metadata` (text by key) goes into the Parquet schema metadata or the HDF5 file's attributes.
    """
    numeric = bool(ids) and all(map(is_numeric_id, ids))
    keys = [int(i) for i in ids] if numeric else ids
    if source == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        offsets = pa.array(np.arange(len(keys) + 1, dtype=np.int32) * vectors.shape[1])
        pq.write_table(pa.table({
            "movie_id": pa.array(keys, type=pa.int64() if numeric else pa.string()),
            "embedding": pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1), type=pa.float32())),
        }).replace_schema_metadata(metadata or None), path)
        return
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("movie_ids", data=np.asarray(keys, dtype=np.int64 if numeric else h5py.string_dtype()))
        handle.create_dataset("embeddings", data=vectors, dtype=np.float32)
        handle.attrs.update(metadata or {})


def table_metadata(source: str, path: Path) -> dict[str, str]:
    """The metadata `write_table` stored with a consolidated table."""
    if source == "parquet":
        import pyarrow.parquet as pq

        stored = pq.read_schema(path).metadata or {}
        return {key.decode(): value.decode() for key, value in stored.items()}
    import h5py

    with h5py.File(path, "r") as handle:
        return {key: str(value) for key, value in handle.attrs.items()}


def read_table(source: str, path: Path, dim: int, vectors: bool = True) -> tuple[list[str], np.ndarray | None]:
    """The ids (as strings) and, when asked, the N x dim float32 matrix of a consolidated table."""
    if source == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["movie_id", "embedding"] if vectors else ["movie_id"])
        ids = [str(i) for i in table.column("movie_id").to_pylist()]
        if not vectors:
            return ids, None
        values = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return ids, values.astype(np.float32, copy=False).reshape(len(ids), dim)
    import h5py

    with h5py.File(path, "r") as handle:
        stored = handle["movie_ids"]
        ids = [str(i) for i in (stored.asstr()[...] if h5py.check_string_dtype(stored.dtype) else stored[...])]
        matrix = np.asarray(handle["embeddings"][...], dtype=np.float32).reshape(len(ids), dim) if vectors else None
    return ids, matrix
