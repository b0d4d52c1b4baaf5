"""Rebuild the consolidated Parquet/HDF5 files of every model folder under --output."""

import argparse
import sys
from pathlib import Path

from m3l import models
from m3l.feature_store import consolidate, model_lock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("features"), help="output root (default: features)")
    args = parser.parse_args(argv)
    if not args.output.is_dir():
        print(f"error: output folder not found: {args.output}", file=sys.stderr)
        return 2
    found = [info for info in models.MODELS.values() if (args.output / info.folder).is_dir()]
    if not found:
        print(f"error: no model folder under {args.output}", file=sys.stderr)
        return 2
    for info in found:
        with model_lock(args.output, info):  # waits for a run writing this model to finish
            parquet, h5 = consolidate(args.output, info)
        print(f"{info.folder}: {parquet.name}, {h5.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
