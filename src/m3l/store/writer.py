"""Writing vectors: one JSON file per movie and model, and a log per model.

Every file under its final name is complete: JSON and consolidated files are
written to a temporary name in the same folder and renamed into place. A failed
write (disk full, read-only folder) removes its temporary file and raises
`OutputError`, which stops the run. One run at a time writes a model's files
under an output root: `m3l.store.locks.model_locks` holds a per-model lock for
the whole run (see docs/guarantees.md).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m3l.catalog import id_problem, printable
from m3l.errors import UserError
from m3l.models import ModelInfo
from m3l.models.spec import SpecInfo, marker
from m3l.store.files import OutputError, open_regular, real_folder
from m3l.store.log import Summary, log_line
from m3l.store.scan import DIRECTORY, FolderScan, Index, check_marker_dim
from m3l.store.layout import MARKER, FeatureRoot, ModelLayout, marker_bytes, read_marker, recorded_marker, temporary_affixes
from m3l.store.provenance import ProvenanceLog

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it when the block succeeds, removed otherwise.

    Readers therefore see the old file or the whole new one, never a partial one; an
    OSError on the way (ENOSPC, EROFS, ...) becomes an `OutputError`.
    """
    prefix, suffix = temporary_affixes(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
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


@contextmanager
def signals_held() -> Iterator[None]:
    """Handle SIGINT and SIGTERM only when the block ends, so that what it writes and counts
    happens whole: a file renamed into place is always counted in the run's summary."""
    if threading.current_thread() is not threading.main_thread():  # handlers run in the main thread
        yield
        return
    held: list[int] = []
    previous = {number: signal.signal(number, lambda received, frame: held.append(received))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        if held:
            signal.raise_signal(held[0])  # now handled as it would have been


def atomic_write_bytes(path: Path, data: bytes) -> os.stat_result:
    """Write `data` to `path` atomically; the file's status as written (the rename keeps it)."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            status = os.fstat(handle.fileno())
    return status


class FeatureStore:
    """The per-movie JSON files and the log of one model under an output root."""

    def __init__(self, output: Path | FeatureRoot, info: ModelInfo, lend_written: bool = True) -> None:
        """`lend_written`: keep each vector written for the consolidation after the run (one float32
        matrix of the run's vectors); off when no consolidation follows."""
        self.info = info
        self.lend_written = lend_written
        self.layout = ModelLayout(output, info)
        self.folder = self.layout.folder
        self.log_path = self.layout.log
        real_folder(self.folder)
        os.close(open_regular(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT))
        self.summary = Summary(self.layout.name)
        self.scan: FolderScan | None = None  # the resume scan, lent to the consolidation after the run
        self.started = time.perf_counter()
        if isinstance(info, SpecInfo):  # its dimension: recorded by an earlier run, else known at its first vector
            recorded = read_marker(self.folder)
            if recorded and recorded.dim and info.dim and recorded.dim != info.dim:
                raise UserError(f"{info.name} declares dim {info.dim}, but the {MARKER} marker of {self.folder} "
                                f"says {recorded.dim}: a model whose dimension changed writes elsewhere "
                                "(--output DIR); a marker edited by hand gets its dim back")
            self._record(recorded if recorded and recorded.dim else info)
        self.mixed: Callable[[str], None] | None = None  # logs each id written under a second provenance

    def claim(self, provenance: dict, allow_mixed: bool, adopt_as: str | None = None) -> None:
        """Refuse (UserError) to write vectors of another provenance than the folder's, unless `allow_mixed`,
        or into a folder of vectors without provenance, unless `adopt_as` (see m3l.store.provenance)."""
        present = FolderScan(self.folder, self.info.dim).ids
        self.mixed = ProvenanceLog(self.layout.provenance).claim(provenance, allow_mixed, present, adopt_as)

    def path(self, movie_id: str) -> Path:
        problem = id_problem(movie_id)
        if problem:  # catalogue readers reject these first; a path is never built from one
            raise ValueError(f"{problem}: {printable(movie_id)}")
        return self.layout.vector(movie_id)

    def log(self, movie_id: str, status: str, reason: str) -> None:
        line = log_line(self.info.folder, movie_id, status, reason).encode("utf-8")
        fd = open_regular(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        except OSError as error:
            raise OutputError(self.log_path, error) from None
        finally:
            os.close(fd)

    def finish(self) -> Summary:
        """The run's summary, its time measured from the store's creation."""
        self.summary.seconds = time.perf_counter() - self.started
        return self.summary

    def skip(self, movie_id: str, reason: str) -> None:
        with signals_held():
            self.log(movie_id, "skipped", reason)
            self.summary.skipped += 1

    def fail(self, movie_id: str, reason: str) -> None:
        with signals_held():
            self.log(movie_id, "failed", reason)
            self.summary.failed += 1

    def pending(self, ids: list[str]) -> list[str]:
        """The ids still to compute: one scan of the folder, reading only the files the index of the
        last consolidation does not vouch for. A file that is not a complete vector is logged and
        recomputed; a directory in the way of `<id>.json` is logged as this id's failure."""
        self.scan = FolderScan(self.folder, self.info.dim)
        index = Index.load(self.layout.index)
        if index is not None:
            index.apply(self.scan)
        self.scan.read(k for k in map(self.scan.position.get, ids) if k is not None)
        check_marker_dim(self.scan, self.info)
        todo = []
        for movie_id in ids:
            k = self.scan.position.get(movie_id)
            if k is not None and self.scan.done(k):
                self.summary.already_done += 1
                continue
            problem = self.scan.problem(movie_id)
            if problem == DIRECTORY:
                self.fail(movie_id, f"{self.path(movie_id).name} is a directory: remove it to compute this id")
                continue
            if problem:
                self.log(movie_id, "recompute", f"existing {self.path(movie_id).name}: {problem}")
            todo.append(movie_id)
        return todo

    def _record(self, info: SpecInfo) -> None:
        """A spec model's marker: its spec, modality and, once known, its dimension. Written only when
        that changes (a marker written before the modality was recorded gains it): a write to the folder
        makes its tables look out of date."""
        if recorded_marker(self.folder) != marker(info):
            atomic_write_bytes(self.layout.marker, marker_bytes(info))
        self.info = info

    def write(self, movie_id: str, vector: np.ndarray) -> None:
        vector = np.asarray(vector, dtype=np.float32)
        if not self.info.dim and isinstance(self.info, SpecInfo) and vector.ndim == 1:
            self._record(self.info.with_dim(len(vector)))  # the first vector of a first run: the loaded model's
        if vector.shape != (self.info.dim,) and isinstance(self.info, SpecInfo) and vector.ndim == 1:
            raise UserError(f"{self.info.name} gives {len(vector)}-d vectors, but the {MARKER} marker of "
                            f"{self.folder} says {self.info.dim}: a model whose dimension changed writes "
                            "elsewhere (--output DIR)")  # the model's, not one item's: every vector would fail
        if vector.shape != (self.info.dim,):
            raise ValueError(f"vector of shape {vector.shape}, expected ({self.info.dim},)")
        if not np.isfinite(vector).all():
            raise ValueError("vector has NaN or Inf values")
        values = vector.tolist()
        if self.info.decimals is not None:
            values = [round(x, self.info.decimals) for x in values]
        with signals_held():
            if self.mixed:  # logged first: an id whose line cannot be written is not written either
                self.mixed(movie_id)
            status = atomic_write_bytes(self.path(movie_id), json.dumps({movie_id: values}).encode())
            if self.scan is not None and self.lend_written:  # the consolidation takes the vector from here
                self.scan.record(movie_id, status, np.array(values, dtype=np.float64).astype(np.float32))
            self.summary.done += 1
