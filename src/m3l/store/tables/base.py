"""The interface every consolidated table format implements (see m3l.store.tables)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

CHUNK_BYTES = 64 << 20  # rows per Parquet row group / HDF5 chunk: this many bytes of vectors, 32768 rows at most


def chunk_rows(dim: int) -> int:
    return max(1, min(1 << 15, CHUNK_BYTES // (4 * max(dim, 1))))


class RowWriter(Protocol):
    def write(self, keys: np.ndarray | list[str], vectors: np.ndarray) -> None:
        """The next rows: their keys (`table_keys`) and float32 vectors, which must not change afterwards."""

    def close(self) -> None:
        """Finish the file; called however the writing ended."""


class TableFormat(ABC):
    """One on-disk format of the consolidated table."""

    name: ClassVar[str]  # the `source` readers name it by
    suffix: ClassVar[str]  # of its file, `<modality>_embeddings_<name><suffix>`

    @abstractmethod
    def writer(self, path: Path, count: int, dim: int, numeric: bool, metadata: Mapping[str, str]) -> RowWriter:
        """A writer of `count` rows of `dim` values to `path`; `numeric`: the keys are int64, else strings."""

    @abstractmethod
    def chunks(self, path: Path, dim: int, vectors: bool = True) -> Iterator[tuple[list[str], np.ndarray | None]]:
        """The ids (as strings) and, when asked, the float32 vectors of the table, a chunk of rows at a time."""

    @abstractmethod
    def count(self, path: Path, dim: int) -> int:
        """The number of rows, read from the table's metadata and checked with `held`."""

    @abstractmethod
    def metadata(self, path: Path) -> dict[str, str]:
        """The metadata its writer stored."""

    def rows(self, path: Path) -> AbstractContextManager[tuple[np.ndarray | list[str], object]]:
        """The table's keys (as `table_keys` gives them) and its vectors, any row read on demand."""
        raise NotImplementedError(f"{self.name} tables are read in chunks only")

    def disk_bytes(self, keys: np.ndarray | list[str], dim: int) -> int:
        """About what the table of these rows takes on disk, never less (uncompressed: the vectors, the ids,
        and 4 bytes of offsets per row)."""
        ids = 8 * len(keys) if isinstance(keys, np.ndarray) else sum(map(len, keys)) + 16 * len(keys)
        return 4 * dim * len(keys) + ids + 4 * len(keys)


def held(path: Path, rows: int, dim: int) -> int:
    """A table's declared row count, checked against what its file can hold: each row takes its dim float32
    values and at least a byte of id (the tables are not compressed). A few bytes can declare billions of
    rows, which a reader would allocate or walk through."""
    size = path.stat().st_size
    if rows * (4 * dim + 1) > size:
        raise ValueError(f"{path.name} declares {rows} rows of {dim} float32 values, more than its {size} bytes "
                         "can hold (damaged or crafted)")
    return rows
