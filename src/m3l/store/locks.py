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
from m3l.store.writer import TEMP_SUFFIX, OutputError


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
