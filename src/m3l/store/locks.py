"""One run at a time writes a model's files: a per-model lock, and the temporaries a killed run left."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from m3l.models import ModelInfo
from m3l.store.files import OutputError, open_regular, real_folder
from m3l.store.layout import FeatureRoot, ModelLayout


def _lock_holder(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown process"


@contextmanager
def model_lock(output: Path | FeatureRoot, info: ModelInfo) -> Iterator[None]:
    """Hold `<output>/.<folder>.lock` (flock): the one run writing this model's files.

    A second run waits for the first to finish, then finds its ids done, so no id
    is computed twice. The kernel drops the lock when its holder dies, even by
    SIGKILL; the temporary files such a death left behind are removed here.
    """
    layout = ModelLayout(output, info)
    real_folder(layout.output)  # M3L's layout: the modality's N_<modality>_feat/ under the root
    path = layout.lock
    fd = open_regular(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{info.folder}: another run ({_lock_holder(fd)}) is writing this model under {output}; "
                  "waiting for it to finish", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # who holds the lock, for the message above: a disk already full stops the run here
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        except OSError as error:
            raise OutputError(path, error) from None
        remove_temporaries(output, info)
        yield
    finally:
        os.close(fd)


@contextmanager
def model_locks(output: Path | FeatureRoot, infos: Iterable[ModelInfo]) -> Iterator[None]:
    """`model_lock` of several models, taken in folder order so that two runs never deadlock."""
    with ExitStack() as stack:
        for info in sorted(infos, key=lambda info: info.folder):
            stack.enter_context(model_lock(output, info))
        yield


def remove_temporaries(output: Path | FeatureRoot, info: ModelInfo) -> None:
    """Only safe under the model's lock: no live run is writing them."""
    for path in ModelLayout(output, info).temporaries():
        path.unlink(missing_ok=True)
