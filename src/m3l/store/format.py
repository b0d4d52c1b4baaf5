"""What the feature files hold, read and written only here (their names: m3l.store.layout).

Under an output root, per model:
- `<folder>/<id>.json` holds `{id: [dim numbers]}`, finite as float32 (`parse_vector` reads
  one; `FolderScan` lists a folder once and reads each file at most once);
- `log_<folder>.txt` holds one line per event, `<timestamp> <model> <id> <status> <reason>`
  (`log_line` writes one, `parse_log_line` reads one);
- `<modality>_embeddings_<name>.parquet` and `.h5` hold the consolidated table: column or
  dataset `movie_id` / `movie_ids` (int64 when every id's decimal form round-trips, else
  strings) and `embedding` / `embeddings` (float32), sorted by `id_order`, written in chunks
  (`TableWriter`) and read without a Python object per value (`read_table`);
- `<modality>_embeddings_<name>.index.npz`, the index of the last consolidation (`Index`):
  size, mtime and inode of every file it read and what it found in it, and the stamps of
  the tables it wrote.

Parsing uses orjson and checks a whole vector with numpy; the standard library parser
only looks again at files orjson refuses, to tell NaN or Inf literals from broken JSON.
"""

from __future__ import annotations

import io
import json
import mmap
import os
import stat
from array import array
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson

from m3l.catalog import id_problem, path_kind, printable
from m3l.errors import UserError
from m3l.models import ModelInfo
from m3l.models.spec import SpecInfo
from m3l.store.files import open_for_reading
from m3l.store.layout import MARKER, vector_id, vector_name

NOT_JSON = "files that do not parse"
NOT_OWN_ID = "files that are not {id: [...]} for their own id"
NOT_NUMBERS = "files with values that are not numbers"
NOT_FINITE = "NaN or Inf values"
BEYOND_FLOAT32 = "values beyond float32 range"
_NUMBER_TYPES = {int, float}
_INT64_MAX = 2**63 - 1
CHUNK_BYTES = 64 << 20  # rows per Parquet row group / HDF5 chunk: this many bytes of vectors, 32768 rows at most


def wrong_length(dim: int) -> str:
    return f"wrong length (not {dim})"


def parse_vector(raw: bytes, movie_id: str, dim: int) -> np.ndarray | str:
    """The float32 vector of a per-movie JSON file, or the problem that keeps it from being one:
    a file is sound only when it is exactly `{movie_id: [dim numbers]}`, finite as float32."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # NaN, Infinity and numbers beyond float64 are no JSON to orjson
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return NOT_JSON
    if not isinstance(data, dict) or len(data) != 1 or not isinstance(data.get(movie_id), list):
        return NOT_OWN_ID
    values = data[movie_id]
    if not set(map(type, values)) <= _NUMBER_TYPES:
        return NOT_NUMBERS
    if len(values) != dim:
        return wrong_length(dim)
    try:
        wide = np.array(values, dtype=np.float64)
    except OverflowError:
        return BEYOND_FLOAT32
    if not np.isfinite(wide).all():
        return NOT_FINITE
    with np.errstate(over="ignore"):
        vector = wide.astype(np.float32)
    return vector if np.isfinite(vector).all() else BEYOND_FLOAT32


def integer_ids(ids: Iterable[str]) -> bool:
    """Whether the tables store these ids as int64: each one's decimal form round-trips exactly."""
    found = False
    for movie_id in ids:
        if not (movie_id.isascii() and movie_id.isdigit() and str(int(movie_id)) == movie_id
                and int(movie_id) <= _INT64_MAX):
            return False
        found = True
    return found


def table_keys(ids: list[str]) -> np.ndarray | list[str]:
    """The ids as the tables store them: int64 when every id's decimal form round-trips, else the strings."""
    return np.array(ids, dtype=np.int64) if integer_ids(ids) else list(ids)


def key_order(keys: np.ndarray | list[str]) -> np.ndarray:
    """The permutation sorting table keys like the tables: numerically, else by string."""
    if isinstance(keys, np.ndarray):
        return np.argsort(keys, kind="stable")
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def id_order(ids: list[str]) -> tuple[bool, np.ndarray]:
    """Whether the ids are stored as integers, and the permutation sorting them like the tables."""
    keys = table_keys(ids)
    return isinstance(keys, np.ndarray), key_order(keys)


def canonical_id(movie_id: object) -> str:
    """An id as every reader returns it: its string form, exactly as its file is named (an int64
    table id is one whose decimal form round-trips)."""
    return str(movie_id)


def chunk_rows(dim: int) -> int:
    return max(1, min(1 << 15, CHUNK_BYTES // (4 * max(dim, 1))))


def tables_bytes(keys: np.ndarray | list[str], dim: int) -> int:
    """About what the Parquet and HDF5 tables of these rows take on disk together, never less: the
    float32 vectors and the ids twice (an HDF5 string costs a 16-byte reference besides its
    characters), chunk indexes and headers."""
    rows = len(keys)
    ids = 8 * rows if isinstance(keys, np.ndarray) else sum(map(len, keys)) + 16 * rows
    data = 2 * (4 * dim * rows + ids) + 8 * rows  # Parquet's list and string offsets
    return data + data // 100 + (64 << 10)


class TableWriter:
    """The consolidated Parquet and HDF5 files of one model, written chunk by chunk.

    `metadata` (text by key) goes into the Parquet schema metadata and the HDF5 file's attributes.

    Layout: Parquet `movie_id` (int64 or string) and `embedding` (list<float32>), one row
    group per chunk; HDF5 `movie_ids` and `embeddings` (N x dim float32, chunked). Both
    files are byte-identical for the same rows however they were gathered: no timestamps.
    Parquet is written in a thread beside the HDF5 writes (pyarrow releases the GIL),
    one chunk behind at most.
    """

    def __init__(self, parquet: Path, hdf5: Path, count: int, dim: int, numeric: bool,
                 metadata: Mapping[str, str] | None = None) -> None:
        import h5py
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.dim, self.numeric, self.written = dim, numeric, 0
        self.id_type = pa.int64() if numeric else pa.string()
        schema = pa.schema([("movie_id", self.id_type), ("embedding", pa.list_(pa.float32()))], metadata=metadata)
        # Unique ids and float vectors neither compress nor gain from dictionaries or value statistics, and
        # skipping them makes the table about 5x faster to read and 2x faster to write
        self.parquet = pq.ParquetWriter(parquet, schema, use_dictionary=False, compression="none",
                                        write_statistics=["movie_id"])
        self.parquet_thread = ThreadPoolExecutor(1, thread_name_prefix="parquet")
        self.parquet_batch: Future | None = None
        self.hdf5 = h5py.File(hdf5, "w", track_order=False)
        self.hdf5.attrs.update(metadata or {})
        id_dtype = np.int64 if numeric else h5py.string_dtype()
        rows = min(chunk_rows(dim), max(count, 1))
        self.ids = self.hdf5.create_dataset("movie_ids", shape=(count,), dtype=id_dtype, track_times=False,
                                            chunks=(rows,) if count else None)
        self.vectors = self.hdf5.create_dataset("embeddings", shape=(count, dim), dtype=np.float32,
                                                track_times=False, chunks=(rows, dim) if count else None)

    def write(self, keys: np.ndarray | list[str], vectors: np.ndarray) -> None:
        """The next rows: their keys (`table_keys`) and float32 vectors, which must not change afterwards."""
        import pyarrow as pa

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        offsets = _arrow(pa.int32(), np.arange(len(keys) + 1, dtype=np.int32) * self.dim)
        embedding = pa.ListArray.from_arrays(offsets, _arrow(pa.float32(), vectors.reshape(-1)))
        movie_id = _arrow(pa.int64(), keys) if self.numeric else _arrow_strings(keys)
        batch = pa.RecordBatch.from_arrays([movie_id, embedding], schema=self.parquet.schema)
        self._wait_for_parquet()
        self.parquet_batch = self.parquet_thread.submit(self.parquet.write_batch, batch)
        end = self.written + len(keys)
        self.ids[self.written:end] = keys
        self.vectors[self.written:end] = vectors
        self.written = end

    def _wait_for_parquet(self) -> None:
        batch, self.parquet_batch = self.parquet_batch, None
        if batch is not None:
            batch.result()

    def close(self) -> None:
        try:
            self._wait_for_parquet()
        finally:
            self.parquet_thread.shutdown()
            self.parquet.close()
            self.hdf5.close()


def _arrow(kind: object, values: np.ndarray) -> object:
    """An Arrow array over a numpy buffer (pa.array would import pandas, seconds on a busy machine)."""
    import pyarrow as pa

    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def _arrow_strings(ids: list[str]) -> object:
    """Valid ids are ASCII: one byte per character."""
    import pyarrow as pa

    offsets = np.zeros(len(ids) + 1, dtype=np.int32)
    np.cumsum([len(movie_id) for movie_id in ids], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(ids), [None, pa.py_buffer(offsets),
                                                        pa.py_buffer("".join(ids).encode("ascii"))])


def parquet_vectors(column: object, count: int, dim: int) -> np.ndarray:
    """The count x dim float32 matrix of a Parquet `embedding` column, one row group at a time."""
    matrix, row = np.empty((count, dim), dtype=np.float32), 0
    for chunk in column.chunks:
        values = chunk.flatten()
        if values.null_count or len(values) != len(chunk) * dim or str(values.type) != "float":
            raise ValueError(f"embedding column is not {dim} float32 values per row")
        buffer = values.buffers()[1]
        matrix[row:row + len(chunk)] = np.frombuffer(buffer, np.float32, len(values), 4 * values.offset).reshape(-1, dim)
        row += len(chunk)
    return matrix


@contextmanager
def table_writer(parquet: Path, hdf5: Path, count: int, dim: int, numeric: bool,
                 metadata: Mapping[str, str] | None = None) -> Iterator[TableWriter]:
    writer = TableWriter(parquet, hdf5, count, dim, numeric, metadata)
    try:
        yield writer
    finally:
        writer.close()


BAD_NAME = "file names that are not valid ids"
UNREAD, SOUND, BAD, TRUSTED = 0, 1, 2, 3  # TRUSTED: sound per the index, vector not read
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
INDEX_FORMAT = 1


def _stamp(status: os.stat_result) -> tuple[int, int, int]:
    return status.st_size, status.st_mtime_ns, status.st_ino


def _not_a_file(kind: str) -> str:
    return f"entries that are not regular files ({kind}, never opened)"


DIRECTORY = _not_a_file("a directory")


def not_a_file(path: Path, mode: int) -> str:
    """The problem of an entry that is not a regular file, naming what it is."""
    if stat.S_ISDIR(mode):
        return DIRECTORY
    if stat.S_ISLNK(mode):
        kind = path_kind(path)  # links followed: to nothing, a loop, or what it points to
        return _not_a_file("a dangling symbolic link" if kind == "a symbolic link to nothing" else
                           kind if kind == "a symbolic link loop" else "a symbolic link")
    if stat.S_ISFIFO(mode):
        return _not_a_file("a FIFO")
    return _not_a_file("a socket" if stat.S_ISSOCK(mode) else "a device or other special file")


def sparse_matrix(rows: int, dim: int) -> np.ndarray:
    """A float32 matrix whose untouched rows take no memory. numpy would back a big one with huge
    pages, where writing one row faults in 2 MiB: a few new files scattered over a folder's rows
    would cost the whole matrix."""
    if not rows * dim:
        return np.empty((rows, dim), dtype=np.float32)
    return np.frombuffer(mmap.mmap(-1, rows * dim * 4), dtype=np.float32).reshape(rows, dim)


class FolderScan:
    """One model folder's `<id>.json` entries, listed once; each file read at most once.

    Position k describes `ids[k]`: its stamp, its state, and (when SOUND) its vector in
    row k of `matrix`, which is allocated for every file but only touched for those
    read, so unread rows cost no memory.

    `donor`, this process's earlier scan of the same folder, stands for the listing: the
    folder is what the donor listed plus the files recorded in it since (`record`), which
    holds while no other process writes the folder (a run holds the model's lock). It
    lends the vectors it read or recorded of files whose stamp has not changed since.
    """

    def __init__(self, folder: Path, dim: int, donor: FolderScan | None = None) -> None:
        self.folder, self.dim, self.donor = Path(folder), dim, donor
        self.problems: dict[str, str] = {}  # file name → why it is left out
        self.ids: list[str] = []
        self.listed = 0  # `<id>.json` entries of any kind
        self.recorded: dict[str, tuple[tuple[int, int, int], np.ndarray]] = {}  # id → stamp, vector
        self.stamps = self._list() if donor is None else self._take_listing(donor)
        self.position = {movie_id: k for k, movie_id in enumerate(self.ids)}
        self.state = np.zeros(len(self.ids), dtype=np.int8)
        self.matrix = sparse_matrix(len(self.ids), dim)

    def _list(self) -> np.ndarray:
        stamps = array("q")  # size, mtime_ns, inode of each id: 24 bytes, not three Python ints
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    stamp = self._listed(entry)
                    if stamp is not None:
                        self.ids.append(vector_id(entry.name))
                        stamps.extend(stamp)
        except FileNotFoundError:
            pass
        return np.frombuffer(stamps, dtype=np.int64).reshape(len(self.ids), 3).copy()

    def _take_listing(self, donor: FolderScan) -> np.ndarray:
        """The donor's listing with the files recorded since, and the problems of the entries it
        left out (names no id, entries no regular file); files are judged again when read."""
        stamps, new, new_stamps = donor.stamps.copy(), [], []
        for movie_id, (stamp, _) in donor.recorded.items():
            k = donor.position.get(movie_id)
            if k is None:
                new.append(movie_id)
                new_stamps.append(stamp)
            else:
                stamps[k] = stamp
        self.ids = donor.ids + new
        self.listed = donor.listed + len(new)
        self.problems = {name: problem for name, problem in donor.problems.items()
                         if vector_id(name) not in donor.position}
        return np.concatenate([stamps, np.array(new_stamps, dtype=np.int64).reshape(-1, 3)])

    def record(self, movie_id: str, status: os.stat_result, vector: np.ndarray) -> None:
        """A file this process wrote since the listing (its status after the write) and the float32
        vector it holds, lent to a later scan instead of reading the file again."""
        self.recorded[movie_id] = (_stamp(status), vector)

    def _listed(self, entry: os.DirEntry) -> tuple[int, int, int] | None:
        """The stamp of a regular `<id>.json` file; None (and a problem unless it is no JSON name) else."""
        name, movie_id = entry.name, vector_id(entry.name)
        if movie_id is None:
            return None
        self.listed += 1
        if id_problem(movie_id):
            self.problems[name] = BAD_NAME
            return None
        try:
            status = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed since the listing
            return None
        if not stat.S_ISREG(status.st_mode):
            self.problems[name] = not_a_file(Path(entry.path), status.st_mode)
            return None
        return _stamp(status)

    def read(self, positions: Iterable[int]) -> None:
        """Read (or borrow from the donor) each listed file not yet read; TRUSTED ones stay unread."""
        for k in positions:
            if self.state[k] == UNREAD and not self._borrow(k):
                self._read(k)

    def _borrow(self, k: int) -> bool:
        donor, movie_id = self.donor, self.ids[k]
        if donor is None:
            return False
        if movie_id in donor.recorded:
            stamp, vector = donor.recorded[movie_id]
        else:
            j = donor.position.get(movie_id, -1)
            if j < 0 or donor.state[j] != SOUND:
                return False
            stamp, vector = donor.stamps[j], donor.matrix[j]
        if not np.array_equal(stamp, self.stamps[k]):
            return False
        self.matrix[k] = vector
        self.state[k] = SOUND
        return True

    def _read(self, k: int) -> None:
        movie_id = self.ids[k]
        path = self.folder / vector_name(movie_id)
        try:  # O_NONBLOCK: a FIFO swapped in since the listing never blocks; fstat then refuses it
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as error:
            return self._bad(k, f"unreadable files ({error.strerror})")
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                return self._bad(k, not_a_file(path, status.st_mode))
            if status.st_size > 64 * self.dim + 4096:
                return self._bad(k, "files too large to hold one vector")
            raw = os.read(fd, status.st_size + 1)
        except OSError as error:
            return self._bad(k, f"unreadable files ({error.strerror})")
        finally:
            os.close(fd)
        self.stamps[k] = _stamp(status)
        vector = parse_vector(raw, movie_id, self.dim)
        if isinstance(vector, str):
            return self._bad(k, vector)
        self.matrix[k] = vector
        self.state[k] = SOUND

    def _bad(self, k: int, problem: str) -> None:
        self.state[k] = BAD
        self.problems[vector_name(self.ids[k])] = problem

    def problem(self, movie_id: str) -> str | None:
        return self.problems.get(vector_name(movie_id))

    def done(self, k: int) -> bool:
        return self.state[k] in (SOUND, TRUSTED)

    def sound(self) -> np.ndarray:
        """Positions of the files read sound."""
        return np.flatnonzero(self.state == SOUND)


def check_marker_dim(scan: FolderScan, info: ModelInfo) -> None:
    """A spec model's dimension comes from its folder's marker: when none of the vectors read has it
    (the marker edited, or a class that changed its `dim`), every vector would count as damaged and
    every new one fail, so it is one error before anything is written."""
    if not isinstance(info, SpecInfo) or (scan.state == SOUND).any() or (scan.state == TRUSTED).any():
        return
    misfits = sum(problem == wrong_length(scan.dim) for problem in scan.problems.values())
    if misfits:
        raise UserError(f"none of the {misfits} vectors read in {scan.folder} has the {scan.dim} values its "
                        f"{MARKER} marker says: put back the dim of its vectors there (a model whose "
                        "dimension changed writes elsewhere, --output DIR)")


def read_folder(folder: Path, info: ModelInfo) -> tuple[list[str], np.ndarray]:
    """Every sound vector of a model's JSON folder, sorted like the tables; one float32 matrix, no per-value objects."""
    scan = FolderScan(folder, info.dim)
    scan.read(range(len(scan.ids)))
    check_marker_dim(scan, info)
    positions = scan.sound()
    ids = [scan.ids[k] for k in positions]
    _, order = id_order(ids)
    return [ids[k] for k in order], scan.matrix[positions[order]]


@dataclass
class Index:
    """What the last consolidation read: per file its stamp and problem ("" when sound); the tables' stamps."""

    dim: int
    ids: list[str]
    stamps: np.ndarray  # N x 3 int64: size, mtime_ns, inode
    problems: list[str]
    tables: np.ndarray  # 2 x 3: the Parquet and HDF5 files' stamps

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, format=INDEX_FORMAT, dim=self.dim, stamps=self.stamps, tables=self.tables,
                 ids=np.frombuffer("\n".join(self.ids).encode(), dtype=np.uint8),
                 problems=np.frombuffer("\n".join(self.problems).encode(), dtype=np.uint8))
        return buffer.getvalue()

    @classmethod
    def load(cls, path: Path) -> Index | None:
        """The index, or None when it is missing, no regular file or unreadable in any way."""
        fd = open_for_reading(path)
        if fd is None:
            return None
        try:
            with os.fdopen(fd, "rb") as handle, np.load(handle, allow_pickle=False) as data:
                if int(data["format"]) != INDEX_FORMAT:
                    return None
                ids = data["ids"].tobytes().decode().split("\n") if data["ids"].size else []
                problems = data["problems"].tobytes().decode().split("\n") if data["ids"].size else []
                index = cls(int(data["dim"]), ids, data["stamps"].astype(np.int64), problems,
                            data["tables"].astype(np.int64))
        except Exception:  # noqa: BLE001 - a damaged index is only a reason to read everything again
            return None
        if index.stamps.shape != (len(ids), 3) or len(problems) != len(ids) or index.tables.shape != (2, 3):
            return None
        return index

    def apply(self, scan: FolderScan) -> bool:
        """Mark the files the index vouches for (unchanged since it was written) in the scan.

        True when every sound file it lists is unchanged, i.e. when the old tables hold
        exactly the sound files it vouches for (a file it found bad may have been replaced
        or removed since: the tables never held it).
        """
        if self.dim != scan.dim:
            return False
        positions = np.array([scan.position.get(movie_id, -1) for movie_id in self.ids], dtype=np.int64)
        same = positions >= 0
        same[same] = (scan.stamps[positions[same]] == self.stamps[same]).all(axis=1)
        sound = np.array([not problem for problem in self.problems], dtype=bool)
        scan.state[positions[same & sound]] = TRUSTED
        for i in np.flatnonzero(same & ~sound):
            scan.state[positions[i]] = BAD
            scan.problems[vector_name(scan.ids[positions[i]])] = self.problems[i]
        return bool(same[sound].all())


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
    """The entries of a log; none when it is no regular file."""
    fd = open_for_reading(path)
    if fd is None:
        return
    with open(fd, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    for line in lines:
        entry = parse_log_line(line)
        if entry is not None:
            yield entry


def table_metadata(source: str, path: Path) -> dict[str, str]:
    """The metadata `TableWriter` stored with a consolidated table."""
    if source == "parquet":
        import pyarrow.parquet as pq

        stored = pq.read_schema(path).metadata or {}
        return {key.decode(): value.decode() for key, value in stored.items()}
    import h5py

    with h5py.File(path, "r") as handle:
        return {key: str(value) for key, value in handle.attrs.items()}


def _held(path: Path, rows: int, dim: int) -> int:
    """A table's declared row count, checked against what its file can hold: each row takes its dim float32
    values and at least a byte of id (the tables are not compressed). A few bytes can declare billions of
    rows, which a reader would allocate or walk through."""
    size = path.stat().st_size
    if rows * (4 * dim + 1) > size:
        raise ValueError(f"{path.name} declares {rows} rows of {dim} float32 values, more than its {size} bytes "
                         "can hold (damaged or crafted)")
    return rows


def _hdf5_datasets(handle: object, path: Path, dim: int) -> tuple[object, object]:
    """The `movie_ids` and `embeddings` datasets of an open HDF5 table, their shapes checked."""
    stored, embeddings = handle["movie_ids"], handle["embeddings"]
    rows = _held(path, len(stored), dim)
    if embeddings.shape != (rows, dim):
        raise ValueError(f"{path.name}: embeddings of shape {embeddings.shape}, expected ({rows}, {dim})")
    return stored, embeddings


def table_rows(source: str, path: Path, dim: int) -> int:
    """The number of rows of a consolidated table, read from its metadata."""
    if source == "parquet":
        import pyarrow.parquet as pq

        return _held(path, pq.ParquetFile(path).metadata.num_rows, dim)
    import h5py

    with h5py.File(path, "r") as handle:
        return len(_hdf5_datasets(handle, path, dim)[0])


def iter_table(source: str, path: Path, dim: int,
               vectors: bool = True) -> Iterator[tuple[list[str], np.ndarray | None]]:
    """The ids (as strings) and, when asked, the float32 vectors of a consolidated table, a chunk of rows at a time."""
    if source == "parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        columns = ["movie_id", "embedding"] if vectors else ["movie_id"]
        for group in range(table.num_row_groups):
            rows = table.read_row_group(group, columns=columns, use_pandas_metadata=False)
            ids = [str(i) for i in rows.column("movie_id").to_pylist()]
            yield ids, parquet_vectors(rows.column("embedding"), len(ids), dim) if vectors else None
        return
    import h5py

    with h5py.File(path, "r") as handle:
        stored, embeddings = _hdf5_datasets(handle, path, dim)
        text = h5py.check_string_dtype(stored.dtype)
        step = chunk_rows(dim)
        for start in range(0, len(stored), step):
            part = stored.asstr()[start:start + step] if text else stored[start:start + step]
            ids = list(part) if text else list(map(str, part))
            matrix = np.asarray(embeddings[start:start + len(ids)], dtype=np.float32) if vectors else None
            yield ids, None if matrix is None else matrix.reshape(len(ids), dim)


@contextmanager
def hdf5_rows(path: Path) -> Iterator[tuple[np.ndarray | list[str], object]]:
    """A consolidated HDF5 table's keys (as `table_keys` gives them) and its `embeddings` dataset, read lazily."""
    import h5py

    with h5py.File(path, "r") as handle:
        stored = handle["movie_ids"]
        text = h5py.check_string_dtype(stored.dtype)
        yield list(stored.asstr()[:]) if text else stored[:].astype(np.int64), handle["embeddings"]


def read_table(source: str, path: Path, dim: int, vectors: bool = True) -> tuple[list[str], np.ndarray | None]:
    """The ids (as strings) and, when asked, the N x dim float32 matrix of a consolidated table."""
    count = table_rows(source, path, dim)
    ids: list[str] = []
    matrix = np.empty((count, dim), dtype=np.float32) if vectors else None
    for chunk_ids, chunk in iter_table(source, path, dim, vectors):
        if len(ids) + len(chunk_ids) > count:
            raise ValueError(f"{path.name} holds more rows than its metadata says")
        if matrix is not None:
            matrix[len(ids):len(ids) + len(chunk_ids)] = chunk
        ids.extend(chunk_ids)
    if len(ids) != count:
        raise ValueError(f"{path.name} holds fewer rows than its metadata says")
    return ids, matrix
