"""The Ray Data engine: the local run of m3l.engines.local, spread over a Ray cluster.

    pending items (driver: the feature stores decide what is pending)
      → prepare: decode + Encoder.preprocess        CPU tasks, anywhere in the cluster
      → embed: map_batches over a fixed actor pool  each actor loads the encoders once
      → outcomes streamed back to the driver, which records them through the same
        feature stores (atomic JSON, logs, summary), so the output folder is the same.

Per-item failures are isolated exactly as in the local engine (the same `prepare`
and `Batcher`). A worker or node lost mid-batch is restarted and its batch retried
by Ray; a batch that keeps killing its worker is given up and its items are logged
as failed, so the run still finishes. A GPU left unusable in a worker (`DeviceError`)
stops the run from the driver, as in the local engine. Samples and outcomes travel
pickled, because they are arbitrary Python objects (tensors, arrays, failures) that
Arrow cannot type.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import pickle
import socket
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data

from m3l.catalog import Item
from m3l.engines.pipeline import (Batcher, DeviceError, Failure, Outcome, Plan, Recorder, feed, load_encoders,
                                  prepare)
from m3l.errors import UserError
from m3l.models.base import Encoder

TASK_RETRIES = 3  # attempts after a worker dies while running a batch; then its items are logged as lost
LOST = "lost: Ray gave up on its batch after its worker died repeatedly (see the Ray logs)"


@dataclass(frozen=True)
class _Prepare:
    """Row {item, folders} → {id, prepared}: decoding and preprocessing, as a CPU task."""

    loader: Callable[[Item], Any]
    encoders: dict[str, Encoder]  # by folder; pickled without weights

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        item = pickle.loads(row["item"])
        prepared = prepare(item, self.loader, [self.encoders[folder] for folder in row["folders"]])
        return {"id": item.id, "prepared": pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)}


class _Embed:
    """An inference actor: loads the encoders once, then turns batches of prepared items into outcomes."""

    def __init__(self, encoders: list[Encoder], batch_size: int) -> None:
        load_encoders(encoders)
        self.encoders, self.batch_size = encoders, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes: dict[str, dict[str, Outcome]] = {}
        warnings: dict[str, tuple[str, ...]] = {}

        def collect(folder: str, movie_id: str, outcome: Outcome) -> None:
            outcomes[movie_id][folder] = outcome

        batchers = {encoder.info.folder: Batcher(encoder, self.batch_size, collect) for encoder in self.encoders}
        try:
            for movie_id, payload in zip(batch["id"], batch["prepared"]):
                prepared, warnings[movie_id] = pickle.loads(payload)
                outcomes[movie_id] = {}
                feed(batchers, movie_id, prepared)
            for batcher in batchers.values():
                batcher.flush()
        except DeviceError as error:  # sent to the driver, which stops the run: raised here, Ray would retry
            failed = pickle.dumps(error)
            return {"id": np.array(batch["id"][:1], dtype=object), "result": np.array([failed], dtype=object)}
        results = [pickle.dumps((warnings[movie_id], outcomes[movie_id])) for movie_id in outcomes]
        return {"id": np.array(list(outcomes), dtype=object), "result": np.array(results, dtype=object)}


def execute(plan: Plan, recorder: Recorder, loader: Callable[[Item], Any], encoders: list[Encoder],
            batch_size: int, workers: int, *, address: str | None = None, gpus_per_worker: float = 0.0) -> None:
    """Compute every pending (item, encoder) pair on Ray, handing each outcome to `recorder`.

    1 to `workers` inference actors each hold all the encoders, with `gpus_per_worker`
    GPUs each (0: on CPU).
    """
    if plan.todo:
        connect(address)
        require_gpus(gpus_per_worker)
        remaining = {item.id: [e.info.folder for e in wanted] for item, wanted in zip(plan.todo, plan.wanted)}
        for movie_id, item_warnings, outcomes in _outcomes(plan, loader, _shippable(encoders, gpus_per_worker),
                                                            batch_size, workers, gpus_per_worker):
            if remaining.pop(movie_id, None) is None:  # already recorded (a retried batch)
                continue
            recorder.warn(movie_id, outcomes, item_warnings)
            for folder, outcome in outcomes.items():
                recorder(folder, movie_id, outcome)
        for movie_id, folders in remaining.items():
            for folder in folders:
                recorder(folder, movie_id, Failure(LOST))


def connect(address: str | None) -> None:
    """Join the cluster at `address` ('auto', host:port, ray://host:port; None: $RAY_ADDRESS or a new
    local instance)."""
    if not ray.is_initialized():
        try:
            _reachable(address)
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, ValueError) as error:
            raise UserError(f"could not connect to Ray at {address}: {' '.join(str(error).split())}") from None


def _reachable(address: str | None) -> None:
    """Refuse a cluster address where nothing answers within M3L_RAY_CONNECT_TIMEOUT seconds (default 30):
    ray.init would retry it for ten minutes. A malformed address is a ValueError."""
    from ray._private.services import canonicalize_bootstrap_address

    if address and address.startswith("ray://"):
        return  # Ray Client's own connection gives up after a few tries
    bootstrap = canonicalize_bootstrap_address(address)  # None: a new local instance
    if bootstrap is None:
        return
    host, _, port = bootstrap.rpartition(":")
    wait = float(os.environ.get("M3L_RAY_CONNECT_TIMEOUT") or 30)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=wait).close()
    except OSError as error:
        why = f"no answer within {wait:g} s, M3L_RAY_CONNECT_TIMEOUT" if isinstance(error, TimeoutError) else error
        raise ConnectionError(f"nothing answers at {bootstrap} ({why})") from None
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # per-item outcomes are in our own logs


def require_gpus(gpus_per_worker: float) -> None:
    """Refuse a GPU run on a cluster without GPUs: its inference workers would wait for them forever."""
    available = ray.cluster_resources().get("GPU", 0)
    if gpus_per_worker > available:
        raise UserError(f"--device cuda: the Ray cluster has {available:g} GPUs, and each inference worker "
                        f"needs {gpus_per_worker:g} (--gpus-per-worker); add GPU nodes or use --device cpu")


def _shippable(encoders: list[Encoder], gpus_per_worker: float) -> list[Encoder]:
    """Copies for the workers: absolute store paths (workers run elsewhere) and the workers' device."""
    shipped = []
    for encoder in encoders:
        encoder = copy.copy(encoder)
        encoder.paths = [Path(path).absolute() for path in encoder.paths]
        encoder.device = "cuda" if gpus_per_worker > 0 else "cpu"  # Ray sets the visible GPUs
        shipped.append(encoder)
    return shipped


def _actor_pool(workers: int) -> ray.data.ActorPoolStrategy:
    """One to `workers` inference actors: Ray Data adds actors while resources allow, and a fixed
    pool as large as the cluster would hold every CPU and starve the decoding tasks forever.

    Each actor holds one batch at a time: a batch queued behind one that kills the worker would die
    with it, be retried behind it again, and could be lost with it."""
    return ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, workers), max_tasks_in_flight_per_actor=1)


def _outcomes(plan: Plan, loader: Callable[[Item], Any], encoders: list[Encoder], batch_size: int,
              workers: int, gpus_per_worker: float) -> Iterator[tuple[str, tuple[str, ...], dict[str, Outcome]]]:
    """(id, warnings, outcome per folder) of every todo item, in the order they finish."""
    rows = [{"item": pickle.dumps(item), "folders": [e.info.folder for e in wanted]}
            for item, wanted in zip(plan.todo, plan.wanted)]
    dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch_size))
    dataset.context.enable_progress_bars = False  # the driver's own progress bars count items
    dataset.context.max_errored_blocks = -1  # a batch given up after TASK_RETRIES: its items are LOST
    needed = {folder for wanted in plan.wanted for folder in (e.info.folder for e in wanted)}
    with warnings.catch_warnings():
        # Retry limits have no named parameter yet in the pinned Ray (2.60) and are deprecated as
        # plain remote args from 2.64 on. Ray Data's default is to retry forever, which a batch
        # that always kills its worker would turn into a run that never ends. The differing
        # remote args also keep the two stages apart: fused, decoding would run in the actors.
        warnings.simplefilter("ignore", DeprecationWarning)
        prepared = dataset.map(_Prepare(loader, {e.info.folder: e for e in encoders}), max_retries=TASK_RETRIES)
        embedded = prepared.map_batches(
            _Embed, fn_constructor_args=([e for e in encoders if e.info.folder in needed], batch_size),
            batch_size=batch_size, batch_format="numpy", compute=_actor_pool(workers),
            num_gpus=gpus_per_worker, max_restarts=-1, max_task_retries=TASK_RETRIES)
    for row in embedded.iter_rows():
        result = pickle.loads(row["result"])
        if isinstance(result, DeviceError):
            raise result
        item_warnings, outcomes = result
        yield row["id"], item_warnings, outcomes
