"""Engines run the pending items of a catalogue through the encoders into the feature stores.

An engine is a small protocol (`Engine`): the options it adds to the extract scripts, how it
settles the device and the worker count, and how it executes a plan. `run` builds the plan
and the recorder once, whichever engine executes them. `local` (the default,
m3l.engines.local) uses this machine only; `ray` (m3l.engines.ray) spreads the same run over
a Ray cluster and writes the same output folder. An engine's module is imported only when
it executes, so the local engine works where Ray is not installed. Another engine is one
`Engine` subclass and one `register` call.
"""

from __future__ import annotations

import argparse
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from m3l.errors import UserError

if TYPE_CHECKING:
    from m3l.catalog import Item
    from m3l.engines.pipeline import Plan, Recorder
    from m3l.modalities import Modality
    from m3l.models.base import Encoder
    from m3l.progress import NewCounter
    from m3l.store.writer import FeatureStore

MAX_AUTO_WORKERS = 8


class Engine(ABC):
    name: ClassVar[str]  # what --engine takes
    about: ClassVar[str]  # for --help

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Options of its own, beside --engine."""

    def check(self, args: argparse.Namespace) -> None:
        """Refuse, before any work, a run it cannot do (a UserError)."""

    def device(self, args: argparse.Namespace) -> str:
        """The encoders' device for --device (auto, cpu, cuda, cuda:N), checked on this machine."""
        if args.device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", args.device):
            raise UserError(f"unknown device {args.device!r}; use auto, cpu, cuda or cuda:N")
        return args.device

    def workers(self, requested: int | str, modality: Modality, device: str) -> int:
        """--workers (a count or `auto`): `auto` is the modality's default."""
        return modality.workers if requested == "auto" else int(requested)

    @abstractmethod
    def execute(self, plan: Plan, recorder: Recorder, loader: Callable[[Item], Any], encoders: list[Encoder],
                batch_size: int, workers: int, args: argparse.Namespace | None) -> None:
        """Compute every pending (item, encoder) pair of `plan`, handing each outcome to `recorder`."""


class LocalEngine(Engine):
    name, about = "local", "this machine"

    def device(self, args: argparse.Namespace) -> str:
        import torch

        name = super().device(args)
        if name == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA device is available on this machine")
        return name

    def workers(self, requested: int | str, modality: Modality, device: str) -> int:
        """`auto` on a GPU, where decoding must keep up with a much faster device: one loader per core
        but the one the main process needs, at most MAX_AUTO_WORKERS (each holds a few items in flight,
        up to hundreds of MB per trailer)."""
        if requested != "auto" or modality.workers == 0 or not device.startswith("cuda"):
            return super().workers(requested, modality, device)
        return max(1, min(len(os.sched_getaffinity(0)) - 1, MAX_AUTO_WORKERS))

    def execute(self, plan: Plan, recorder: Recorder, loader: Callable[[Item], Any], encoders: list[Encoder],
                batch_size: int, workers: int, args: argparse.Namespace | None) -> None:
        from m3l.engines.local import execute

        execute(plan, recorder, loader, encoders, batch_size, workers)


class RayEngine(Engine):
    """--workers counts inference workers; their device follows --gpus-per-worker, so this machine needs no GPU."""

    name, about = "ray", "a Ray cluster"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--ray-address", metavar="ADDRESS",
                           help="ray engine: 'auto' (the cluster this node belongs to) or ray://host:port "
                                "(default: $RAY_ADDRESS, else a Ray instance started on this machine)")
        group.add_argument("--gpus-per-worker", type=_non_negative_float, metavar="F",
                           help="ray engine: GPUs per inference worker, fractions share a GPU (default: 1 with "
                                "--device cuda, else 0: on CPU). With the ray engine --workers is the number of "
                                "inference workers")

    def check(self, args: argparse.Namespace) -> None:
        self._module()
        ray_gpus(args)

    @staticmethod
    def _module() -> Any:
        try:
            from m3l.engines import ray as ray_engine
        except ModuleNotFoundError as error:
            if not (error.name or "").startswith("ray"):
                raise
            raise UserError(f"--engine ray needs {error.name}, which this venv lacks; "
                            "install it with: pip install 'ray[data]==2.60.0'") from None
        return ray_engine

    def execute(self, plan: Plan, recorder: Recorder, loader: Callable[[Item], Any], encoders: list[Encoder],
                batch_size: int, workers: int, args: argparse.Namespace | None) -> None:
        self._module().execute(plan, recorder, loader, encoders, batch_size, workers,
                           address=args.ray_address, gpus_per_worker=ray_gpus(args))


ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    ENGINES[engine.name] = engine
    return engine


register(LocalEngine())
register(RayEngine())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine (see docs/cluster.md)")
    group.add_argument("--engine", choices=tuple(ENGINES), default="local",
                       help="; ".join(f"{name}: {engine.about}" for name, engine in ENGINES.items())
                            + " (default: local)")
    for engine in ENGINES.values():
        engine.add_arguments(group)


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value


def select(args: argparse.Namespace) -> Engine:
    """The engine the command line asked for, once it has checked it can run."""
    engine = ENGINES[args.engine]
    engine.check(args)
    return engine


def run(engine: Engine, items: list[Item], loader: Callable[[Item], Any], encoders: list[Encoder],
        stores: dict[str, FeatureStore], batch_size: int, workers: int, progress: NewCounter | None = None,
        args: argparse.Namespace | None = None) -> None:
    """Compute every pending (item, encoder) pair with `engine` and write it to that encoder's store."""
    from m3l.engines.pipeline import Plan, Recorder

    plan = Plan.of(items, encoders, stores)
    engine.execute(plan, Recorder(stores, plan, progress), loader, encoders, batch_size, workers, args)


def ray_gpus(args: argparse.Namespace) -> float:
    """GPUs per Ray inference worker for --device: the workers choose their device, not this machine."""
    gpus, device = args.gpus_per_worker, args.device
    if device.startswith("cuda:"):
        raise UserError(f"--device {device} with --engine ray: Ray gives each worker its GPUs; use --device cuda")
    if device == "cuda" and gpus == 0:
        raise UserError("--device cuda with --gpus-per-worker 0: the ray engine's workers would have no GPU")
    if device == "cpu" and gpus:
        raise UserError(f"--device cpu with --gpus-per-worker {gpus:g}: the workers would hold GPUs they never use")
    return (1.0 if device == "cuda" else 0.0) if gpus is None else gpus
