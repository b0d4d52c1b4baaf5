"""Consolidation: a model's JSON folder into one table per registered format (m3l.store.tables:
HDF5 and Parquet), incrementally.

The index of the last consolidation (see `m3l.store.scan.Index`) vouches for every
file whose size, mtime and inode have not changed: their vectors are taken from the
old table of the base format (HDF5) and only new files are read. When the index is missing, unreadable, or
disagrees with the folder (a sound file it lists changed or vanished) or with the tables,
every file is read again. Tables are written chunk by chunk, the old table's rows read
a chunk at a time beside the new files' vectors, so memory stays near one float32
matrix of the files read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from m3l.errors import UserError
from m3l.models import ModelInfo
from m3l.store.codec import integer_ids, key_order, table_keys
from m3l.store.layout import FeatureRoot, ModelLayout, vector_id
from m3l.store.scan import SOUND, TRUSTED, UNREAD, FolderScan, Index, check_marker_dim
from m3l.store.tables import TABLE_FORMATS, base_format, chunk_rows, tables_bytes
from m3l.store.provenance import metadata
from m3l.store.writer import atomic_output, atomic_write_bytes


def _stamps(paths: Iterable[Path]) -> np.ndarray | None:
    """Of the files themselves: a link planted at a table's name never passes for the table."""
    try:
        return np.array([(s.st_size, s.st_mtime_ns, s.st_ino) for s in map(os.lstat, paths)], dtype=np.int64)
    except OSError:
        return None


def _plan(layout: ModelLayout, scan: FolderScan, full: bool) -> bool:
    """Mark what the index vouches for in the scan; True when the old tables can be built on."""
    index = None if full else Index.load(layout.index)
    tables = _stamps(layout.tables.values())
    if index is not None and index.apply(scan) and tables is not None and np.array_equal(index.tables, tables):
        return True
    scan.state[scan.state == TRUSTED] = UNREAD  # their vectors are needed: the old tables are not used
    return False


def consolidate(output: Path | FeatureRoot, info: ModelInfo, scan: FolderScan | None = None,
                full: bool = False) -> list[Path]:
    """Bring the consolidated tables (`<modality>_embeddings_<name>.h5`, `.parquet`: one per registered
    format, m3l.store.tables) up to date with the JSON folder, sorted by id; their paths.

    `scan`, the run's resume scan (the run still holding the model's lock), stands for the listing
    and lends the vectors it read or the run wrote; `full` ignores the index.
    Files that are no sound vector are left out, each named in one line on stderr.
    """
    layout = ModelLayout(output, info)
    recorded = metadata(layout.provenance)  # a damaged provenance.jsonl stops it before any work
    current = FolderScan(layout.folder, info.dim, donor=scan)
    incremental = _plan(layout, current, full)
    new = np.flatnonzero(current.state == UNREAD)
    current.read(new)
    check_marker_dim(current, info)
    for name, problem in sorted(current.problems.items()):
        print(f"{info.folder}: {name} left out of the tables: {problem}", file=sys.stderr)
    if incremental and not len(new):
        return list(layout.tables.values())
    fresh = new[current.state[new] == SOUND]
    with ExitStack() as stack:
        base = base_format()
        old_keys, old_vectors = stack.enter_context(base.rows(layout.tables[base.name])) if incremental else ([], None)
        keys = _merged_keys(old_keys, [current.ids[k] for k in fresh])
        if isinstance(old_keys, np.ndarray) and isinstance(keys, list):  # the old rows sort otherwise now
            old_vectors = old_vectors[:]
        _write_tables(layout, keys, old_vectors, current.matrix, fresh, recorded)
    _write_index(layout, current)
    return list(layout.tables.values())


def _merged_keys(old: np.ndarray | list[str], fresh_ids: list[str]) -> np.ndarray | list[str]:
    """The table keys of the old table's rows followed by the fresh ids."""
    if isinstance(old, np.ndarray) and (not fresh_ids or integer_ids(fresh_ids)):
        return np.concatenate([old, np.array(fresh_ids, dtype=np.int64)])
    return table_keys([*map(str, old), *fresh_ids])


def _write_tables(layout: ModelLayout, keys: np.ndarray | list[str], old_vectors: object,
                  matrix: np.ndarray, fresh: np.ndarray, recorded: dict[str, str]) -> None:
    """Every table, sorted by key, a chunk at a time: key k's vector is row k of the old table (its base
    format's rows, or an array) while k is below its length, then the row of `matrix` at `fresh[k - length]`.
    `recorded`: the provenance metadata they carry."""
    info = layout.info
    numeric = isinstance(keys, np.ndarray)
    order = key_order(keys)
    old_count = len(keys) - len(fresh)
    _require_room(layout, tables_bytes(keys, info.dim))
    with ExitStack() as stack:
        writers = []
        for name, path in layout.tables.items():
            temporary = stack.enter_context(atomic_output(path))
            writer = TABLE_FORMATS[name].writer(temporary, len(keys), info.dim, numeric, recorded)
            stack.callback(writer.close)  # closed before its temporary is renamed into place
            writers.append(writer)
        step = chunk_rows(info.dim)
        for start in range(0, len(order), step):
            rows = order[start:start + step]
            old = rows < old_count
            chunk = np.empty((len(rows), info.dim), dtype=np.float32)
            if old.any():
                chunk[old] = _rows(old_vectors, rows[old])
            chunk[~old] = matrix[fresh[rows[~old] - old_count]]
            for writer in writers:
                writer.write(keys[rows] if numeric else [keys[k] for k in rows], chunk)


def _require_room(layout: ModelLayout, needed: int) -> None:
    """Refuse to start tables the disk cannot hold: HDF5 cannot recover from a failed write (its close
    raises, and the interpreter then crashes at exit, losing the error line)."""
    status = os.statvfs(layout.output)
    free = status.f_bavail * status.f_frsize
    if free < needed:
        raise UserError(f"no room for the consolidated tables of {layout.info.folder} under {layout.output}: about "
                        f"{_mib(needed)} needed, {_mib(free)} free; the previous tables are intact "
                        "(free some space, then run src/consolidate.py)")


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _rows(vectors: object, rows: np.ndarray) -> np.ndarray:
    """Rows of a matrix or HDF5 dataset; an ascending run of rows (the usual case) is read as one slice."""
    if rows[-1] - rows[0] + 1 == len(rows) and (np.diff(rows) == 1).all():
        return vectors[rows[0]:rows[-1] + 1]
    return vectors[rows]


def _write_index(layout: ModelLayout, scan: FolderScan) -> None:
    problems = [""] * len(scan.ids)
    for name, problem in scan.problems.items():
        k = scan.position.get(vector_id(name))
        if k is not None:
            problems[k] = problem
    index = Index(layout.info.dim, scan.ids, scan.stamps, problems, _stamps(layout.tables.values()))
    atomic_write_bytes(layout.index, index.to_bytes())
