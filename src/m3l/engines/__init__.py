"""Engines run the pending items of a catalogue through the encoders into the feature stores.

`local` (the default, m3l.engines.local) uses this machine only; `ray` (m3l.engines.ray) spreads
the same run over a Ray cluster and writes the same output folder. Ray is imported only
when the ray engine is chosen, so the local engine works where Ray is not installed.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from m3l.errors import UserError

Engine = Callable[..., None]  # run(items, loader, encoders, stores, batch_size, workers, progress)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine (see docs/cluster.md)")
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this machine; ray: a Ray cluster (default: local)")
    group.add_argument("--ray-address", metavar="ADDRESS",
                       help="ray engine: 'auto' (the cluster this node belongs to) or ray://host:port "
                            "(default: $RAY_ADDRESS, else a Ray instance started on this machine)")
    group.add_argument("--gpus-per-worker", type=_non_negative_float, metavar="F",
                       help="ray engine: GPUs per inference worker, fractions share a GPU (default: 1 with "
                            "--device cuda, else 0: on CPU). With the ray engine --workers is the number of "
                            "inference workers")


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value


def select(args: argparse.Namespace) -> Engine:
    """The run function of the engine the command line asked for."""
    if args.engine == "local":
        from m3l.engines.local import run

        return run
    try:
        from m3l.engines import ray as ray_engine
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("ray"):
            raise
        raise UserError(f"--engine ray needs {error.name}, which this venv lacks; "
                        "install it with: pip install 'ray[data]==2.60.0'") from None
    return functools.partial(ray_engine.run, address=args.ray_address, gpus_per_worker=ray_gpus(args))


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
