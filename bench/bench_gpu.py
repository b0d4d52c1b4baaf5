"""Every modality end to end on a CUDA GPU: items/s, how busy the GPU was, and the feed rate.

    .venvs/video/bin/python bench/bench_gpu.py [--items 64]

For each extractor of tests/core/extractors.py (its test models, in its own venv, on
its bundled sample media repeated --items times) this runs the script with
`--device cuda` (default --workers auto) and reports:
  items/s      end to end, model loading included
  GPU busy     the fraction of the run's samples (every 0.2 s, `nvidia-smi`) in which a
               kernel was running: below 1, the GPU waited for the CPU side
  feed         items/s the loaders deliver with the models replaced by a sink (the local
               engine's prepared-item stream, as a GPU run configures it)
It exits with a message where no CUDA GPU is available.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO, parser


def gpu_busy_sampler() -> tuple[threading.Event, list[int]]:
    """Start sampling the GPU's utilisation (percent) every 0.2 s until the returned event is set."""
    done, samples = threading.Event(), []

    def sample() -> None:
        while not done.wait(0.2):
            result = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                     "--id=0"], capture_output=True, text=True)
            if result.returncode == 0 and result.stdout.strip().isdigit():
                samples.append(int(result.stdout.strip()))

    threading.Thread(target=sample, daemon=True).start()
    return done, samples


def feed_rate(modality: str, catalogue: Path, models: str, workers: str, device: str = "cuda") -> float:
    """Items/s of the prepared-item stream for a GPU run, consumed by a sink (run in the modality's venv)."""
    from m3l.cli import build_parser, create_encoders, load_catalogue, model_files, model_infos
    from m3l.engines import ENGINES
    from m3l.engines.local import PreparedItems, prepared_stream
    from m3l.media import LoaderOptions
    from m3l.modalities import MODALITIES

    chosen = MODALITIES[modality]
    args = build_parser(chosen, [models], "feed").parse_args(
        [chosen.input_flag, str(catalogue), "--models", models, "--models-dir", os.environ["BENCH_STORE"],
         "--device", device, "--workers", workers])
    infos = model_infos(chosen, args)
    encoders = create_encoders(chosen, args, infos, model_files(chosen, args, infos), device)
    items = load_catalogue(chosen, args).items
    dataset = PreparedItems(items, chosen.make_loader(encoders, LoaderOptions.of(args)), [encoders] * len(items))
    started = time.perf_counter()
    count = sum(1 for _ in prepared_stream(dataset, ENGINES["local"].workers(args.workers, chosen, device),
                                           args.batch_size))
    return count / (time.perf_counter() - started)


def run_modality(extractor, items: int, root: Path) -> str:
    from tests.core.extractors import build_store, make_catalogue

    store = build_store(extractor, root / f"store-{extractor}")
    catalogue = make_catalogue(extractor, root / f"input-{extractor}", count=items)
    done, samples = gpu_busy_sampler()
    started = time.perf_counter()
    result = subprocess.run([str(extractor.python), str(REPO / "src" / extractor.script), extractor.input_flag,
                             str(catalogue), "--models", extractor.models, "--models-dir", str(store), "--output",
                             str(root / f"out-{extractor}"), "--device", "cuda", "--no-consolidate"],
                            capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    done.set()
    if result.returncode != 0:
        raise SystemExit(f"{extractor.script} failed:\n{result.stderr[-2000:]}")
    busy = sum(1 for s in samples if s > 0) / len(samples) if samples else float("nan")
    feed = subprocess.run([str(extractor.python), str(Path(__file__)), "--feed-of", extractor.modality,
                           str(catalogue), extractor.models], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "BENCH_STORE": str(store)})
    if feed.returncode != 0:
        raise SystemExit(f"feed of {extractor}: {feed.stderr[-2000:]}")
    return (f"  {extractor.modality:6s} {extractor.models:15s} {items / seconds:8.2f} items/s   GPU busy "
            f"{busy:5.2f}   feed {float(feed.stdout.split()[-1]):8.2f} items/s")


def main() -> None:
    options = parser(__doc__, repeats=1)
    options.add_argument("--items", type=int, default=64)
    options.add_argument("--feed-of", nargs=3, metavar=("MODALITY", "CATALOGUE", "MODELS"), help=argparse.SUPPRESS)
    args = options.parse_args()
    if args.feed_of:
        modality, catalogue, models = args.feed_of
        print(feed_rate(modality, Path(catalogue), models, "auto"))
        return
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU: there is none on this machine (torch.cuda.is_available() "
                         "is False); see docs/video.md, Running on a GPU, for the CPU-side figures that bound it")
    from tests.core.extractors import EXTRACTORS

    print(f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} cores, {args.items} items per modality, --workers auto")
    with tempfile.TemporaryDirectory() as tmp:
        for extractor in EXTRACTORS:
            print(run_modality(extractor, args.items, Path(tmp)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
