"""How fast features come back: load_features from Parquet, HDF5 and the JSON folder, and the report.

Writes N random vectors of one model through the feature store into a temporary
folder, consolidates, then times each source (median of --repeats) in one run.

    .venvs/text/bin/python bench/load_features.py [--items 5000] [--model vit]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from m3l.models import MODELS  # noqa: E402
from m3l.readers.features import load_features  # noqa: E402
from m3l.readers.report import write_report  # noqa: E402
from m3l.store.consolidate import consolidate  # noqa: E402
from m3l.store.writer import FeatureStore  # noqa: E402


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--model", default="vit", choices=sorted(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    info = MODELS[args.model]
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder)
        store = FeatureStore(output, info)
        rng = np.random.default_rng(0)
        for movie_id in range(1, args.items + 1):
            store.write(str(movie_id), rng.standard_normal(info.dim).astype(np.float32))
        consolidate(output, info)
        print(f"{args.items} vectors of {info.name} ({info.dim}-d), median of {args.repeats}:")
        timings = {source: median_seconds(lambda: load_features(output, info, source), args.repeats)
                   for source in ("parquet", "hdf5", "json")}
        for source, seconds in timings.items():
            print(f"  load_features from {source:7s}: {seconds:7.3f} s  ({timings['json'] / seconds:5.1f}x the JSON folder)")
        print(f"  report (one model):         {median_seconds(lambda: write_report(output), args.repeats):7.3f} s")


if __name__ == "__main__":
    main()
