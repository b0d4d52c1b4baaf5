"""Write a one-page HTML report of an output folder: coverage, norms, missing-id reasons, PCA scatters."""

import argparse
import sys
from pathlib import Path

from m3l.errors import exit_code
from m3l.readers.report import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("features"), help="feature root (default: features)")
    parser.add_argument("--html", type=Path, help="report file (default: <output>/report.html)")
    parser.add_argument("--plots", type=Path, help="plots TSV: text coverage is measured against its ids")
    parser.add_argument("--posters", type=Path, help="poster folder or TSV: image coverage against its ids")
    parser.add_argument("--trailers", type=Path, help="trailer TSV or folder: audio and video coverage against its ids")
    args = parser.parse_args(argv)
    inputs = {"text": args.plots, "image": args.posters, "audio": args.trailers, "video": args.trailers}
    catalogues = {modality: path for modality, path in inputs.items() if path is not None}
    return exit_code(lambda: print(f"report written to {write_report(args.output, args.html, catalogues)}"))


if __name__ == "__main__":
    sys.exit(main())
