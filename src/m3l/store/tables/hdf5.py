"""HDF5 tables: datasets `movie_ids` (int64 or strings) and `embeddings` (N x dim float32, chunked), the
metadata in the file's attributes. The fastest to read, and any row can be read alone: incremental
consolidation builds on the old HDF5 table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from m3l.store.tables.base import TableFormat, chunk_rows, held


class Hdf5Writer:
    def __init__(self, path: Path, count: int, dim: int, numeric: bool, metadata: Mapping[str, str]) -> None:
        import h5py

        self.file = h5py.File(path, "w", track_order=False)
        self.file.attrs.update(metadata)
        id_dtype = np.int64 if numeric else h5py.string_dtype()
        rows = min(chunk_rows(dim), max(count, 1))
        self.ids = self.file.create_dataset("movie_ids", shape=(count,), dtype=id_dtype, track_times=False,
                                            chunks=(rows,) if count else None)
        self.vectors = self.file.create_dataset("embeddings", shape=(count, dim), dtype=np.float32,
                                                track_times=False, chunks=(rows, dim) if count else None)
        self.written = 0

    def write(self, keys: np.ndarray | list[str], vectors: np.ndarray) -> None:
        end = self.written + len(keys)
        self.ids[self.written:end] = keys
        self.vectors[self.written:end] = vectors
        self.written = end

    def close(self) -> None:
        self.file.close()


def _datasets(handle: object, path: Path, dim: int) -> tuple[object, object]:
    """The `movie_ids` and `embeddings` datasets of an open HDF5 table, their shapes checked."""
    stored, embeddings = handle["movie_ids"], handle["embeddings"]
    rows = held(path, len(stored), dim)
    if embeddings.shape != (rows, dim):
        raise ValueError(f"{path.name}: embeddings of shape {embeddings.shape}, expected ({rows}, {dim})")
    return stored, embeddings


class Hdf5Table(TableFormat):
    name, suffix = "hdf5", ".h5"

    def writer(self, path: Path, count: int, dim: int, numeric: bool, metadata: Mapping[str, str]) -> Hdf5Writer:
        return Hdf5Writer(path, count, dim, numeric, metadata)

    def chunks(self, path: Path, dim: int, vectors: bool = True) -> Iterator[tuple[list[str], np.ndarray | None]]:
        import h5py

        with h5py.File(path, "r") as handle:
            stored, embeddings = _datasets(handle, path, dim)
            text = h5py.check_string_dtype(stored.dtype)
            step = chunk_rows(dim)
            for start in range(0, len(stored), step):
                part = stored.asstr()[start:start + step] if text else stored[start:start + step]
                ids = list(part) if text else list(map(str, part))
                matrix = np.asarray(embeddings[start:start + len(ids)], dtype=np.float32) if vectors else None
                yield ids, None if matrix is None else matrix.reshape(len(ids), dim)

    def count(self, path: Path, dim: int) -> int:
        import h5py

        with h5py.File(path, "r") as handle:
            return len(_datasets(handle, path, dim)[0])

    def metadata(self, path: Path) -> dict[str, str]:
        import h5py

        with h5py.File(path, "r") as handle:
            return {key: str(value) for key, value in handle.attrs.items()}

    @contextmanager
    def rows(self, path: Path) -> Iterator[tuple[np.ndarray | list[str], object]]:
        import h5py

        with h5py.File(path, "r") as handle:
            stored = handle["movie_ids"]
            text = h5py.check_string_dtype(stored.dtype)
            yield list(stored.asstr()[:]) if text else stored[:].astype(np.int64), handle["embeddings"]
