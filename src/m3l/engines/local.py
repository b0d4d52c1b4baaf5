"""The local engine: pending items → loader worker processes → batches → encoders → feature stores.

Loader workers decode and preprocess items (`m3l.engines.pipeline.prepare`) ahead of
inference, which runs in this process; see m3l.engines.pipeline for the shared pieces.
Items travel from the workers through /dev/shm; where it is too small for the items in
flight (Docker's default is 64 MB) the run uses fewer workers, or decodes in this
process, and says so once: a worker that cannot allocate shared memory would otherwise
leave the run waiting forever. An item too large for the room left is prepared in this
process; a worker killed while preparing an item (the kernel's OOM killer) fails that item
alone and the run goes on with new workers.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from m3l.catalog import Item
from m3l.engines.pipeline import Batcher, Failure, Plan, Prepared, Recorder, feed, load_encoders, prepare
from m3l.media import NoSharedMemory
from m3l.models.base import Encoder


class PreparedItems:
    """Item index → (id, samples per encoder, warnings), for the local engine's loader workers.

    Each item records the pid of the worker that last started it, so that the item a worker was
    on when it was killed (the kernel's OOM killer) is known and failed alone.
    """

    def __init__(self, items: list[Item], loader: Callable[[Item], Any], wanted: list[list[Encoder]]) -> None:
        self.items, self.loader, self.wanted = items, loader, wanted
        self.started_by = multiprocessing.RawArray("q", len(items))
        self.killed: set[int] = set()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[str, Prepared | None, tuple[str, ...]]:
        """In a loader worker, None for an item too large for the room left in /dev/shm."""
        item = self.items[index]
        if index in self.killed:
            return item.id, {encoder.info.folder: Failure(KILLED) for encoder in self.wanted[index]}, ()
        self.started_by[index] = os.getpid()
        try:
            return (item.id, *prepare(item, self.loader, self.wanted[index]))
        except NoSharedMemory as error:
            return item.id, None, (f"prepared in the main process: no room in /dev/shm for {error}",)

    def in_order(self, started: Iterator,
                 start: Callable[[int], Iterator]) -> Iterator[tuple[str, Prepared, tuple[str, ...]]]:
        """Every item in order from the `started` workers: an item they had no shared memory for is
        prepared here; the item a worker died on fails, and `start(index)` starts workers again from
        the first item not yet delivered."""
        index = 0
        while index < len(self):
            try:
                movie_id, prepared, warnings = next(started)
            except RuntimeError as error:
                culprits = [i for i in range(index, len(self)) if self.started_by[i] in _dead_workers(error)]
                if not culprits:
                    raise
                self.killed.add(max(culprits))  # a worker prepares its items one after another
                started = start(index)
                continue
            if prepared is None:
                movie_id, prepared, own = self[index]
                warnings += own
            yield movie_id, prepared, warnings
            index += 1


KILLED = "its loader worker died decoding it (killed, e.g. by the kernel for want of memory)"


def _dead_workers(error: RuntimeError) -> set[int]:
    """The pids torch's DataLoader names in "DataLoader worker (pid(s) 12, 34) exited unexpectedly"."""
    found = re.search(r"DataLoader worker \(pid\(s\) ([\d, ]+)\) exited unexpectedly", str(error))
    return {int(pid) for pid in found[1].split(",")} if found else set()


def _identity(batch: Any) -> Any:
    return batch


_PR_SET_PDEATHSIG = 1


def _init_worker(parent: int, worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which stops them in order, and leave
    quietly on SIGTERM: a worker killed by a signal, or its fd-sharing thread cut off mid-transfer,
    makes tracebacks, not news. They die with the main process when it is killed outright."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    sys.excepthook = _quiet_when_cut_off  # multiprocessing's fd-sharing thread reports through it
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def _quiet_when_cut_off(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
    """The main process stopped mid-transfer (Ctrl-C while receiving a tensor): nothing to report."""
    if not issubclass(kind, (ConnectionError, EOFError)):
        sys.__excepthook__(kind, error, traceback)


SHARED_MEMORY = Path("/dev/shm")
ITEM_BYTES = 8 * 2**20  # shared memory a prepared plot, poster or soundtrack needs at most, all models


def workers_with_room(workers: int, prefetch: int, item_bytes: int, shm: Path = SHARED_MEMORY) -> int:
    """How many of `workers` loaders /dev/shm has room for, each with `prefetch` items in flight plus
    the one it is preparing; the reduction is logged on stderr."""
    try:
        free = shutil.disk_usage(shm).free
    except OSError:  # no /dev/shm to check: torch reports its own errors
        return workers
    room = min(workers, free // (item_bytes * (prefetch + 1)))
    if room < workers:
        instead = f"using {room} loader workers" if room else "decoding in this process instead"
        print(f"warning: {shm} has {free / 2**20:.0f} MB free, too little for {workers} loader workers "
              f"(up to {item_bytes * (prefetch + 1) / 2**20:.0f} MB each); {instead} (give the machine or "
              "container more shared memory, e.g. docker run --shm-size=16g)", file=sys.stderr, flush=True)
    return room


def prepared_stream(dataset: PreparedItems, workers: int,
                    batch_size: int) -> Iterator[tuple[str, Prepared, tuple[str, ...]]]:
    """Prepared items in order, decoded by `workers` processes ahead of the consumer.

    The workers start here, before any weights are loaded, so they never hold a copy.
    Together they keep about one batch of items in flight (at least two each), so the
    device does not wait for decoding between batches; a loader whose items are large and
    give several samples each says how many it keeps in flight per worker (`prefetch`), and
    how much shared memory an item may take (`shared_bytes`).
    """
    workers = min(workers, len(dataset))
    if workers > 0:
        prefetch = getattr(dataset.loader, "prefetch", max(2, -(-batch_size // workers)))
        workers = workers_with_room(workers, prefetch, getattr(dataset.loader, "shared_bytes", ITEM_BYTES))
    if workers <= 0:
        return map(dataset.__getitem__, range(len(dataset)))
    from torch.utils.data import DataLoader

    def start(first: int) -> Iterator:
        """Workers for the items from `first` on. Torch's SIGCHLD handler is undone: it raises a dead
        worker's error wherever this process is (inside a model's forward pass, blaming its batch);
        the stream raises it instead, within seconds."""
        handler = signal.getsignal(signal.SIGCHLD)
        started = iter(DataLoader(dataset, batch_size=None, sampler=range(first, len(dataset)), num_workers=workers,
                                  collate_fn=_identity, prefetch_factor=prefetch,
                                  worker_init_fn=partial(_init_worker, os.getpid())))
        signal.signal(signal.SIGCHLD, handler)
        return started

    return dataset.in_order(start(0), start)  # the workers start now, before any weights are loaded


def execute(plan: Plan, recorder: Recorder, loader: Callable[[Item], Any], encoders: list[Encoder],
            batch_size: int, workers: int) -> None:
    """Compute every pending (item, encoder) pair here, `workers` loader processes decoding the items."""
    stream = prepared_stream(PreparedItems(plan.todo, loader, plan.wanted), workers, batch_size)
    batchers = {encoder.info.folder: Batcher(encoder, batch_size, recorder) for encoder in encoders}
    load_encoders(encoder for encoder in encoders if plan.pending[encoder.info.folder])

    for movie_id, prepared, warnings in stream:
        recorder.warn(movie_id, prepared, warnings)
        feed(batchers, movie_id, prepared)
    for batcher in batchers.values():
        batcher.flush()
