"""Opening names under the output folder without trusting them: no symbolic link followed, no FIFO opened."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from m3l.errors import UserError


class OutputError(UserError):
    """Writing under the output folder failed: the run cannot go on (disk full, read-only, gone)."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path, self.reason = path, error.strerror or str(error)
        super().__init__(f"cannot write {path}: {self.reason}; the run stopped "
                         "(files already written are intact; run again to resume)")


def open_regular(path: Path, flags: int) -> int:
    """A descriptor of the regular file `path`, opened without following a symbolic link there.

    Names under the output folder are not trusted: a link planted at a lock or log name
    would make the run write wherever it points, a FIFO would block it. Either is refused
    with a `UserError` saying what is in the way.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UserError(f"{path} is a symbolic link: refusing to write through it (remove it)") from None
        raise OutputError(path, error) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{path} is not a regular file: refusing to write to it (remove it)")
    return fd


def is_regular(path: Path) -> bool:
    """Whether `path` itself, no link followed, is a regular file."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def open_for_reading(path: Path) -> int | None:
    """A read-only descriptor of the regular file `path`; None when there is none. As in `open_regular`,
    a symbolic link is not followed and a FIFO not waited on: no planted name makes a reader hang or
    read elsewhere."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def real_folder(path: Path) -> Path:
    """`path` as a folder of its own, created if need be: a symbolic link there is refused, not followed."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(Path(error.filename or path), error) from None
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link: refusing to write through it (remove it)")
    return path
