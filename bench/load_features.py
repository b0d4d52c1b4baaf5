"""How fast features come back: load_features from Parquet, HDF5 and the JSON folder, and the report.

Writes N random vectors of one model through the feature store into a temporary
folder, consolidates, then times each source (median of --repeats) in one run.

    .venvs/text/bin/python bench/load_features.py [--items 5000] [--model vit]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from common import median_seconds, parser
from m3l.models import MODELS
from m3l.readers.features import load_features
from m3l.readers.report import write_report
from m3l.store.consolidate import consolidate
from m3l.store.writer import FeatureStore


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--items", type=int, default=5000)
    options.add_argument("--model", default="vit", choices=sorted(MODELS))
    args = options.parse_args()
    info = MODELS[args.model]
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder)
        store = FeatureStore(output, info)
        rng = np.random.default_rng(0)
        for movie_id in range(1, args.items + 1):
            store.write(str(movie_id), rng.standard_normal(info.dim).astype(np.float32))
        consolidate(output, info)
        print(f"{args.items} vectors of {info.name} ({info.dim}-d), median of {args.repeats}:")
        timings = median_seconds({source: lambda _, source=source: load_features(output, info, source)
                                  for source in ("parquet", "hdf5", "json")}, args.repeats)
        for source, seconds in timings.items():
            print(f"  load_features from {source:7s}: {seconds:7.3f} s  ({timings['json'] / seconds:5.1f}x the JSON folder)")
        report = median_seconds({"report": lambda _: write_report(output)}, args.repeats)["report"]
        print(f"  report (one model):         {report:7.3f} s")


if __name__ == "__main__":
    main()
