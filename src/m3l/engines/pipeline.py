"""What every engine shares: pending items → prepare → batches → encoders → feature stores.

The pipeline knows nothing about modalities. A loader turns an item into decoded
media; each encoder turns the media into samples (`prepare`, run where the engine
decodes), batches samples across items (`Batcher`), and the mean of an item's sample
vectors is recorded once all of them are in (`Recorder`). One bad item never fails
its batch: a failing batch is retried one sample at a time and only the culprit is logged.
A batch too big for the GPU's memory is halved until it fits. An error that leaves the
GPU unusable (illegal memory access, device-side assert) stops the run (`DeviceError`):
every later batch would fail the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from m3l.catalog import Item
from m3l.errors import UserError, describe
from m3l.media import NoSharedMemory
from m3l.models.base import Encoder, use_precision
from m3l.progress import NewCounter
from m3l.store.writer import FeatureStore


@dataclass(frozen=True)
class Failure:
    reason: str


class DeviceError(UserError):
    """The GPU is unusable for the rest of this process."""


# What torch's CUDA errors say when the context is corrupted: every later call fails too.
STICKY_CUDA_ERRORS = ("illegal memory access", "device-side assert", "unspecified launch failure",
                      "misaligned address", "illegal instruction", "uncorrectable ECC error",
                      "CUBLAS_STATUS_EXECUTION_FAILED")


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError)


def stop_if_sticky(error: BaseException) -> None:
    """Raise DeviceError when `error` left the GPU unusable."""
    message = " ".join(str(error).split())
    if isinstance(error, RuntimeError) and any(marker in message for marker in STICKY_CUDA_ERRORS):
        raise DeviceError(f"the GPU failed and cannot run anything more in this process ({message}); "
                          "every vector written so far is complete: run the same command again to resume "
                          "(--device cpu avoids the GPU)") from None


Prepared = dict[str, "list[Any] | Failure"]  # encoder folder → samples, or why there are none
Outcome = "np.ndarray | Failure"  # an item's vector for one model, or why it has none


def prepare(item: Item, loader: Callable[[Item], Any], encoders: list[Encoder]) -> tuple[Prepared, tuple[str, ...]]:
    """One item's samples per encoder and its media's warnings. Runs in loader workers; raises only
    NoSharedMemory (the worker's engine then prepares the item in its own process).

    Media may carry a `warnings` tuple: caveats logged for the item, which is still used.
    """
    try:
        media = loader(item)
    except NoSharedMemory:
        raise
    except Exception as error:  # noqa: BLE001 - any decoding error is this item's failure
        return {encoder.info.folder: Failure(describe(error)) for encoder in encoders}, ()
    prepared: Prepared = {}
    for encoder in encoders:
        try:
            prepared[encoder.info.folder] = encoder.preprocess(media) or Failure("no usable input")
        except Exception as error:  # noqa: BLE001
            prepared[encoder.info.folder] = Failure(describe(error))
    return prepared, tuple(getattr(media, "warnings", ()))


@dataclass
class Batcher:
    """Collects one encoder's samples into batches and items' sample vectors into means.

    Each item's outcome goes to `emit(folder, movie_id, outcome)` once known.
    """

    encoder: Encoder
    batch_size: int
    emit: Callable[[str, str, Outcome], None]
    queue: list[tuple[str, Any]] = field(default_factory=list)
    expected: dict[str, int] = field(default_factory=dict)
    vectors: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, movie_id: str, samples: list[Any]) -> None:
        self.expected[movie_id] = len(samples)
        self.vectors[movie_id] = []
        self.queue.extend((movie_id, sample) for sample in samples)
        while len(self.queue) >= self.batch_size:
            self.flush(self.batch_size)

    def fail(self, movie_id: str, reason: str) -> None:
        self.emit(self.encoder.info.folder, movie_id, Failure(reason))

    def flush(self, count: int | None = None) -> None:
        batch, self.queue = self.queue[:count], self.queue[len(self.queue) if count is None else count:]
        if not batch:
            return
        for (movie_id, _), output in zip(batch, self._outputs([sample for _, sample in batch])):
            self._collect(movie_id, output)

    def _outputs(self, samples: list[Any]) -> list[np.ndarray | Failure]:
        """A vector or a failure per sample: a batch out of GPU memory is split in halves (down to
        one sample), any other failing batch is retried one sample at a time to find the culprit."""
        try:
            return list(self._embed(samples))
        except Exception as error:  # noqa: BLE001
            stop_if_sticky(error)
            if len(samples) == 1:
                return [Failure(describe(error))]
            if is_out_of_memory(error):
                import torch

                torch.cuda.empty_cache()
                half = len(samples) // 2
                return self._outputs(samples[:half]) + self._outputs(samples[half:])
            return [output for sample in samples for output in self._outputs([sample])]

    def _embed(self, samples: list[Any]) -> np.ndarray:
        vectors = np.asarray(self.encoder.embed(samples), dtype=np.float32)
        if vectors.shape != (len(samples), self.encoder.info.dim):
            raise ValueError(f"model returned shape {vectors.shape}, expected ({len(samples)}, {self.encoder.info.dim})")
        return vectors

    def _collect(self, movie_id: str, output: np.ndarray | Failure) -> None:
        if movie_id not in self.vectors:  # an earlier sample of this item already failed it
            return
        if isinstance(output, Failure):
            del self.vectors[movie_id]
            self.fail(movie_id, output.reason)
            return
        self.vectors[movie_id].append(output)
        if len(self.vectors[movie_id]) == self.expected[movie_id]:
            self.emit(self.encoder.info.folder, movie_id, np.mean(self.vectors.pop(movie_id), axis=0))


def feed(batchers: dict[str, Batcher], movie_id: str, prepared: Prepared) -> None:
    """Hand one prepared item to the batcher of each encoder it was prepared for."""
    for folder, samples in prepared.items():
        if isinstance(samples, Failure):
            batchers[folder].fail(movie_id, samples.reason)
        else:
            batchers[folder].add(movie_id, samples)


@dataclass
class Plan:
    """What a run has left to do: per model, the ids without a vector; the items needing any model."""

    pending: dict[str, set[str]]
    todo: list[Item]
    wanted: list[list[Encoder]]  # per todo item, the encoders it still needs

    @classmethod
    def of(cls, items: list[Item], encoders: list[Encoder], stores: dict[str, FeatureStore]) -> Plan:
        ids = [item.id for item in items]
        pending = {e.info.folder: set(stores[e.info.folder].pending(ids)) for e in encoders}
        todo = [item for item in items if any(item.id in pending_ids for pending_ids in pending.values())]
        return cls(pending, todo, [[e for e in encoders if item.id in pending[e.info.folder]] for item in todo])


class Recorder:
    """The driver's end of a run: outcomes and warnings into each model's store, and progress."""

    def __init__(self, stores: dict[str, FeatureStore], plan: Plan,
                 progress: NewCounter | None = None) -> None:
        self.stores = stores
        self.ticks = {folder: progress(folder, len(ids)) if progress else (lambda failed: None)
                      for folder, ids in plan.pending.items()}

    def warn(self, movie_id: str, folders: Iterable[str], warnings: Iterable[str]) -> None:
        for folder in folders:
            for warning in warnings:
                self.stores[folder].log(movie_id, "warning", warning)

    def __call__(self, folder: str, movie_id: str, outcome: Outcome) -> None:
        store = self.stores[folder]
        failed = isinstance(outcome, Failure)
        if failed:
            store.fail(movie_id, outcome.reason)
        else:
            try:
                store.write(movie_id, outcome)
            except ValueError as error:
                store.fail(movie_id, describe(error))
                failed = True
        self.ticks[folder](failed)


def load_encoders(encoders: Iterable[Encoder]) -> None:
    """Load every encoder's weights; a failure is the user's to fix (a broken or partial store)."""
    for encoder in encoders:
        use_precision(encoder.precision)
        try:
            encoder.load()
        except Exception as error:  # noqa: BLE001
            where = f" from {encoder.paths[0]}" if encoder.paths else ""  # a class of its own may need no files
            raise UserError(f"could not load {encoder.info.name}{where}: {describe(error)}")
        if not encoder.info.dim:
            raise UserError(f"{encoder.info.name} has no dimension: declare `dim` in the class, or set "
                            "`self.info = self.info.with_dim(n)` in its `load`")
