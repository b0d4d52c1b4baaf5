"""Consolidation: a model's JSON folder into one Parquet and one HDF5 table, incrementally.

The index of the last consolidation (see `m3l.store.format.Index`) vouches for every
file whose size, mtime and inode have not changed: their vectors are taken from the
old HDF5 table and only new files are read. When the index is missing, unreadable, or
disagrees with the folder (a file it lists changed or vanished) or with the tables,
every file is read again. Tables are written chunk by chunk, so memory stays near one
float32 matrix of the folder (two while an incremental run merges the old table in).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from m3l.models import ModelInfo
from m3l.store.format import (SOUND, SUFFIX, TRUSTED, UNREAD, FolderScan, Index, chunk_rows, id_order, index_path,
                              read_table, table_paths, table_writer)
from m3l.store.provenance import metadata
from m3l.store.writer import atomic_output, atomic_write_bytes


def _stamps(paths: Iterable[Path]) -> np.ndarray | None:
    try:
        return np.array([(s.st_size, s.st_mtime_ns, s.st_ino) for s in map(os.stat, paths)], dtype=np.int64)
    except OSError:
        return None


def _plan(output: Path, info: ModelInfo, scan: FolderScan, full: bool) -> bool:
    """Mark what the index vouches for in the scan; True when the old tables can be built on."""
    index = None if full else Index.load(index_path(output, info))
    paths = table_paths(output, info)
    tables = _stamps([paths["parquet"], paths["hdf5"]])
    if index is not None and index.apply(scan) and tables is not None and np.array_equal(index.tables, tables):
        return True
    scan.state[scan.state == TRUSTED] = UNREAD  # their vectors are needed: the old tables are not used
    return False


def consolidate(output: Path, info: ModelInfo, scan: FolderScan | None = None,
                full: bool = False) -> tuple[Path, Path]:
    """Bring `<modality>_embeddings_<name>.parquet` and `.h5` up to date with the JSON folder, sorted by id.

    `scan`, the run's resume scan, lends the vectors it already read; `full` ignores the index.
    Files that are no sound vector are left out, each named in one line on stderr.
    """
    output = Path(output)
    paths = table_paths(output, info)
    current = FolderScan(output / info.folder, info.dim, donor=scan)
    incremental = _plan(output, info, current, full)
    new = np.flatnonzero(current.state == UNREAD)
    current.read(new)
    for name, problem in sorted(current.problems.items()):
        print(f"{info.folder}: {name} left out of the tables: {problem}", file=sys.stderr)
    if incremental and not len(new):
        return paths["parquet"], paths["hdf5"]
    base_ids, base = read_table("hdf5", paths["hdf5"], info.dim) if incremental else ([], None)
    fresh = new[current.state[new] == SOUND]
    ids = base_ids + [current.ids[k] for k in fresh]
    numeric, order = id_order(ids)
    with atomic_output(paths["parquet"]) as parquet, atomic_output(paths["hdf5"]) as hdf5:
        with table_writer(parquet, hdf5, len(ids), info.dim, numeric, metadata(output / info.folder)) as writer:
            step = chunk_rows(info.dim)
            for start in range(0, len(order), step):
                rows = order[start:start + step]
                chunk = np.empty((len(rows), info.dim), dtype=np.float32)
                old = rows < len(base_ids)
                if base is not None:
                    chunk[old] = base[rows[old]]
                chunk[~old] = current.matrix[fresh[rows[~old] - len(base_ids)]]
                writer.write([ids[k] for k in rows], chunk)
    del base
    problems = [current.problems.get(f"{movie_id}{SUFFIX}", "") for movie_id in current.ids]
    index = Index(info.dim, current.ids, current.stamps, problems, _stamps([paths["parquet"], paths["hdf5"]]))
    atomic_write_bytes(index_path(output, info), index.to_bytes())
    return paths["parquet"], paths["hdf5"]
