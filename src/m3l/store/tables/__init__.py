"""Consolidated tables: one class per on-disk format, all behind one interface, in one registry.

Consolidation writes every registered format, the index records each one's stamp, `verify.py`
audits each one, and `load_features(..., source=NAME)` reads any one (`source="auto"` the
first up to date, in registry order). Every format holds the same rows: the ids as table keys
(`m3l.store.codec.table_keys`: int64, else strings) sorted by `id_order`, each with its dim
float32 values, and the provenance metadata (text by key). Nothing may depend on when or in
which chunks the rows were written: a table is byte-identical for the same rows.

A third format, say Lance or Zarr, is one subclass and one `register` call:

    class ZarrTable(TableFormat):
        name, suffix = "zarr", ".zarr"  # load_features(..., source="zarr"); `<stem>.zarr` beside the others

        def writer(self, path, count, dim, numeric, metadata):
            ...  # a RowWriter: create the arrays (count x dim float32, count keys) and attrs; write() fills
                 # the next rows, close() finishes the file. `path` is a temporary renamed into place after.

        def chunks(self, path, dim, vectors=True):
            ...  # yield (ids as str, float32 matrix or None) a bounded number of rows at a time

        def count(self, path, dim):
            ...  # the row count from the format's own metadata, checked with `held`

        def metadata(self, path):
            ...  # the text metadata the writer stored

    register(ZarrTable())

A format that can hand out any old row cheaply (`rows`, as HDF5 can) may be the one an
incremental consolidation builds on; the first such format registered is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m3l.store.tables.base import TableFormat, chunk_rows, held
from m3l.store.tables.hdf5 import Hdf5Table
from m3l.store.tables.parquet import ParquetTable

__all__ = ["TABLE_FORMATS", "TableFormat", "base_format", "chunk_rows", "held", "read_table",
           "register", "tables_bytes"]

TABLE_FORMATS: dict[str, TableFormat] = {}  # name → format, in the order readers prefer them


def register(table_format: TableFormat) -> TableFormat:
    TABLE_FORMATS[table_format.name] = table_format
    return table_format


def base_format() -> TableFormat:
    """The format an incremental consolidation reads the old rows from: the first with random access."""
    return next(fmt for fmt in TABLE_FORMATS.values() if type(fmt).rows is not TableFormat.rows)


def tables_bytes(keys: np.ndarray | list[str], dim: int) -> int:
    """About what every format's table of these rows takes on disk together, never less, headers and
    chunk indexes included."""
    data = sum(fmt.disk_bytes(keys, dim) for fmt in TABLE_FORMATS.values())
    return data + data // 100 + (64 << 10)


def read_table(source: str, path: Path, dim: int, vectors: bool = True) -> tuple[list[str], np.ndarray | None]:
    """The ids (as strings) and, when asked, the N x dim float32 matrix of a consolidated table."""
    fmt = TABLE_FORMATS[source]
    count = fmt.count(path, dim)
    ids: list[str] = []
    matrix = np.empty((count, dim), dtype=np.float32) if vectors else None
    for chunk_ids, chunk in fmt.chunks(path, dim, vectors):
        if len(ids) + len(chunk_ids) > count:
            raise ValueError(f"{path.name} holds more rows than its metadata says")
        if matrix is not None:
            matrix[len(ids):len(ids) + len(chunk_ids)] = chunk
        ids.extend(chunk_ids)
    if len(ids) != count:
        raise ValueError(f"{path.name} holds fewer rows than its metadata says")
    return ids, matrix


register(Hdf5Table())
register(ParquetTable())
