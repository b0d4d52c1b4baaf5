"""Export features for MMRec: <to>/<modality>/<model>.npy, row i = the item of MMRec index i."""

import argparse
import sys
from pathlib import Path

from m3l.errors import exit_code
from m3l.readers.mmrec import FILL_POLICIES, export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("features"), help="feature root (default: features)")
    parser.add_argument("--item-map", type=Path, required=True,
                        help="TSV with a header row: movie id, MMRec item index (e.g. MMRec's i_id_mapping.csv)")
    parser.add_argument("--to", type=Path, required=True, help="folder to write <modality>/<model>.npy into")
    parser.add_argument("--models", help="comma-separated models or folders (default: every model found)")
    parser.add_argument("--missing", choices=FILL_POLICIES, default="zeros",
                        help="row of an item without a vector: zeros, or the mean of the model's vectors "
                             "(default: zeros)")
    args = parser.parse_args(argv)
    models = [name.strip() for name in args.models.split(",") if name.strip()] if args.models else None

    def run() -> None:
        for exported in export(args.output, args.item_map, args.to, models, args.missing):
            print(exported)

    return exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
