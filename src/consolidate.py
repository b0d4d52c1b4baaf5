"""Bring the consolidated Parquet/HDF5 files of every model folder under --output up to date.

Only JSON files new since the last consolidation are read (see docs/scale.md); --full
reads every file again and rewrites the tables from scratch.
"""

import argparse
import sys
from pathlib import Path

from m3l.errors import UserError, exit_code
from m3l.store.consolidate import consolidate
from m3l.store.layout import FeatureRoot, add_layout_argument
from m3l.store.locks import model_lock


def consolidate_all(output: Path, full: bool = False, layout: str | None = None) -> None:
    if not output.is_dir():
        raise UserError(f"output folder not found: {output}")
    root = FeatureRoot(output, layout)
    found = [info for info in root.found() if root.layout(info).folder.is_dir()]
    if not found:
        raise UserError(f"no model folder under {output}")
    for info in found:
        with model_lock(root, info):  # waits for a run writing this model to finish
            tables = consolidate(root, info, full=full)
        print(f"{info.folder}: {', '.join(path.name for path in tables)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("features"), help="output root (default: features)")
    parser.add_argument("--full", action="store_true", help="read every JSON file again and rebuild the tables")
    add_layout_argument(parser)
    args = parser.parse_args(argv)
    return exit_code(lambda: consolidate_all(args.output, args.full, args.layout))


if __name__ == "__main__":
    sys.exit(main())
