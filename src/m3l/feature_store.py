"""Where vectors go: one JSON file per movie and model, a log per model, consolidated tables.

Every file under its final name is complete: JSON and consolidated files are
written to a temporary name in the same folder and renamed into place. A failed
write (disk full, read-only folder) removes its temporary file and raises
`OutputError`, which stops the run. One run at a time writes a model's files
under an output root: `model_locks` holds a per-model lock for the whole run
(see docs/guarantees.md).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from m3l.catalog import id_problem, printable
from m3l.errors import UserError
from m3l.models import ModelInfo

TEMP_SUFFIX = ".tmp"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class OutputError(UserError):
    """Writing under the output folder failed: the run cannot go on (disk full, read-only, gone)."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"cannot write {path}: {error.strerror or error}; the run stopped "
                         "(files already written are intact; run again to resume)")


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it when the block succeeds, removed otherwise.

    Readers therefore see the old file or the whole new one, never a partial one; an
    OSError on the way (ENOSPC, EROFS, ...) becomes an `OutputError`.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as error:
        raise OutputError(path, error) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; others sharing the folder must read the files
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        with suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputError(path, error) from None
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()


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


@dataclass
class Summary:
    model: str
    done: int = 0
    already_done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (f"{self.model}: {self.done} done, {self.already_done} already done, {self.failed} failed, "
                f"{self.skipped} skipped in {self.seconds:.1f} s")


class FeatureStore:
    """The per-movie JSON files and the log of one model under an output root."""

    def __init__(self, output: Path, info: ModelInfo) -> None:
        self.info = info
        self.output = Path(output)
        self.folder = self.output / info.folder
        self.log_path = self.output / f"log_{info.folder}.txt"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.log_path.touch()
        except OSError as error:
            raise OutputError(Path(error.filename or self.folder), error) from None
        self.summary = Summary(info.folder)
        self.started = time.perf_counter()

    def path(self, movie_id: str) -> Path:
        problem = id_problem(movie_id)
        if problem:  # catalogue readers reject these first; a path is never built from one
            raise ValueError(f"{problem}: {printable(movie_id)}")
        return self.folder / f"{movie_id}.json"

    def log(self, movie_id: str, status: str, reason: str) -> None:
        try:
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(log_line(self.info.folder, movie_id, status, reason))
        except OSError as error:
            raise OutputError(self.log_path, error) from None

    def finish(self) -> Summary:
        """The run's summary, its time measured from the store's creation."""
        self.summary.seconds = time.perf_counter() - self.started
        return self.summary

    def skip(self, movie_id: str, reason: str) -> None:
        self.summary.skipped += 1
        self.log(movie_id, "skipped", reason)

    def fail(self, movie_id: str, reason: str) -> None:
        self.summary.failed += 1
        self.log(movie_id, "failed", reason)

    def read(self, movie_id: str) -> list[float] | None:
        """The stored vector, or None when the file is missing or not a complete vector."""
        try:
            return parse_vector(self.path(movie_id).read_bytes(), movie_id, self.info.dim)
        except OSError:
            return None

    def pending(self, ids: list[str]) -> list[str]:
        """The ids still to compute; a present but unreadable file is logged and recomputed."""
        todo = []
        for movie_id in ids:
            if not self.path(movie_id).exists():
                todo.append(movie_id)
            elif self.read(movie_id) is None:
                self.log(movie_id, "recompute", "existing JSON file is corrupt or incomplete")
                todo.append(movie_id)
            else:
                self.summary.already_done += 1
        return todo

    def write(self, movie_id: str, vector: np.ndarray) -> None:
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.info.dim,):
            raise ValueError(f"vector of shape {vector.shape}, expected ({self.info.dim},)")
        if not np.isfinite(vector).all():
            raise ValueError("vector has NaN or Inf values")
        values = vector.tolist()
        if self.info.decimals is not None:
            values = [round(x, self.info.decimals) for x in values]
        atomic_write_bytes(self.path(movie_id), json.dumps({movie_id: values}).encode())
        self.summary.done += 1


def _lock_holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "unknown process"


@contextmanager
def model_lock(output: Path, info: ModelInfo) -> Iterator[None]:
    """Hold `<output>/.<folder>.lock` (flock): the one run writing this model's files.

    A second run waits for the first to finish, then finds its ids done, so no id
    is computed twice. The kernel drops the lock when its holder dies, even by
    SIGKILL; the temporary files such a death left behind are removed here.
    """
    path = Path(output) / f".{info.folder}.lock"
    try:
        handle = open(path, "a+", encoding="utf-8")
    except OSError as error:
        raise OutputError(path, error) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{info.folder}: another run ({_lock_holder(handle)}) is writing this model under {output}; "
                  "waiting for it to finish", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        remove_temporaries(output, info)
        yield


@contextmanager
def model_locks(output: Path, infos: Iterable[ModelInfo]) -> Iterator[None]:
    """`model_lock` of several models, taken in folder order so that two runs never deadlock."""
    with ExitStack() as stack:
        for info in sorted(infos, key=lambda info: info.folder):
            stack.enter_context(model_lock(output, info))
        yield


def temporaries(output: Path, info: ModelInfo) -> list[Path]:
    """Temporary files of this model's writes: left only by a run that was killed mid-write."""
    output = Path(output)
    return sorted([*(output / info.folder).glob(f".*{TEMP_SUFFIX}"),
                   *output.glob(f".{info.consolidated_name}.*{TEMP_SUFFIX}")])


def remove_temporaries(output: Path, info: ModelInfo) -> None:
    """Only safe under the model's lock: no live run is writing them."""
    for path in temporaries(output, info):
        path.unlink(missing_ok=True)


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


def consolidate(output: Path, info: ModelInfo) -> tuple[Path, Path]:
    """Rebuild `<modality>_embeddings_<name>.parquet` and `.h5` from the JSON folder, sorted by id.

    `movie_id` is int64 when every id is an integer, else a string.
    """
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids, vectors = read_folder(output, info)
    numeric = bool(ids) and all(i.isdigit() for i in ids)
    keys = [int(i) for i in ids] if numeric else ids
    order = sorted(range(len(keys)), key=keys.__getitem__)
    keys, vectors = [keys[i] for i in order], vectors[order]

    offsets = pa.array(np.arange(len(keys) + 1, dtype=np.int32) * info.dim)
    table = pa.table({
        "movie_id": pa.array(keys, type=pa.int64() if numeric else pa.string()),
        "embedding": pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1), type=pa.float32())),
    })
    parquet_path = Path(output) / f"{info.consolidated_name}.parquet"
    h5_path = Path(output) / f"{info.consolidated_name}.h5"
    with atomic_output(parquet_path) as tmp:
        pq.write_table(table, tmp)
    with atomic_output(h5_path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("movie_ids", data=np.asarray(keys, dtype=np.int64 if numeric else h5py.string_dtype()))
        handle.create_dataset("embeddings", data=vectors, dtype=np.float32)
    return parquet_path, h5_path
