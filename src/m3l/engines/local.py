"""The local engine: pending items → loader worker processes → batches → encoders → feature stores.

Loader workers decode and preprocess items (`m3l.engines.pipeline.prepare`) ahead of
inference, which runs in this process; see m3l.engines.pipeline for the shared pieces.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from m3l.catalog import Item
from m3l.engines.pipeline import Batcher, Plan, Prepared, Recorder, feed, load_encoders, prepare
from m3l.models.base import Encoder
from m3l.store.writer import FeatureStore


class PreparedItems:
    """Item index → (id, samples per encoder, warnings), for the local engine's loader workers."""

    def __init__(self, items: list[Item], loader: Callable[[Item], Any], wanted: list[list[Encoder]]) -> None:
        self.items, self.loader, self.wanted = items, loader, wanted

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[str, Prepared, tuple[str, ...]]:
        item = self.items[index]
        return (item.id, *prepare(item, self.loader, self.wanted[index]))


def _identity(batch: Any) -> Any:
    return batch


_PR_SET_PDEATHSIG = 1


def _init_worker(parent: int, worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which stops them in order, and leave
    quietly on SIGTERM: a worker killed by a signal, or its fd-sharing thread cut off mid-transfer,
    makes tracebacks, not news. They die with the main process when it is killed outright."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    threading.excepthook = _quiet_when_cut_off
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def _quiet_when_cut_off(args: threading.ExceptHookArgs) -> None:
    if not issubclass(args.exc_type, (ConnectionError, EOFError)):
        threading.__excepthook__(args)


def prepared_stream(dataset: PreparedItems, workers: int,
                    batch_size: int) -> Iterator[tuple[str, Prepared, tuple[str, ...]]]:
    """Prepared items in order, decoded by `workers` processes ahead of the consumer.

    The workers start here, before any weights are loaded, so they never hold a copy.
    Together they keep about one batch of items in flight (at least two each), so the
    device does not wait for decoding between batches.
    """
    if workers <= 0 or len(dataset) == 0:
        return map(dataset.__getitem__, range(len(dataset)))
    from torch.utils.data import DataLoader

    return iter(DataLoader(dataset, batch_size=None, shuffle=False, num_workers=min(workers, len(dataset)),
                           collate_fn=_identity, prefetch_factor=max(2, -(-batch_size // workers)),
                           worker_init_fn=partial(_init_worker, os.getpid())))


def run(items: list[Item], loader: Callable[[Item], Any], encoders: list[Encoder],
        stores: dict[str, FeatureStore], batch_size: int, workers: int,
        progress: Callable[[str, int], Callable[[], None]] | None = None) -> None:
    """Compute every pending (item, encoder) pair and write it to that encoder's store."""
    plan = Plan.of(items, encoders, stores)
    stream = prepared_stream(PreparedItems(plan.todo, loader, plan.wanted), workers, batch_size)
    recorder = Recorder(stores, plan, progress)
    batchers = {encoder.info.folder: Batcher(encoder, batch_size, recorder) for encoder in encoders}
    load_encoders(encoder for encoder in encoders if plan.pending[encoder.info.folder])

    for movie_id, prepared, warnings in stream:
        recorder.warn(movie_id, prepared, warnings)
        feed(batchers, movie_id, prepared)
    for batcher in batchers.values():
        batcher.flush()
