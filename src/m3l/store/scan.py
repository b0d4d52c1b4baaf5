"""The folder scan and the index: what a model's JSON folder holds, each file read at most once.

`FolderScan` lists a folder once and reads each `<id>.json` at most once; `Index`, saved as
`<modality>_embeddings_<name>.index.npz` by each consolidation, holds the size, mtime and
inode of every file it read and what it found in it, and the stamps of the tables it wrote,
so that the next consolidation or run reads only the files changed since.
"""

from __future__ import annotations

import io
import mmap
import os
import stat
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m3l.catalog import id_problem, path_kind
from m3l.errors import UserError
from m3l.models import ModelInfo
from m3l.models.spec import SpecInfo
from m3l.store.codec import id_order, parse_vector, wrong_length
from m3l.store.files import open_for_reading
from m3l.store.layout import MARKER, vector_id, vector_name

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
    tables: np.ndarray  # one row per table format (m3l.store.tables, in their order): the table's stamp

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
        if index.stamps.shape != (len(ids), 3) or len(problems) != len(ids) or index.tables.shape[1:] != (3,):
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
