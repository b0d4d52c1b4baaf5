"""Write a one-page HTML report of an output folder: coverage, norms, missing-id reasons, PCA scatters."""

import argparse
import sys
from pathlib import Path

from m3l.errors import exit_code
from m3l.modalities import add_catalogue_arguments, catalogue_inputs
from m3l.readers.report import write_report
from m3l.store.layout import add_layout_argument


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("features"), help="feature root (default: features)")
    parser.add_argument("--html", type=Path, help="report file (default: <output>/report.html)")
    add_catalogue_arguments(parser, "coverage of its models is measured against its ids")
    add_layout_argument(parser)
    args = parser.parse_args(argv)
    catalogues = catalogue_inputs(args)
    return exit_code(lambda: print(f"report written to "
                                   f"{write_report(args.output, args.html, catalogues, args.layout)}"))


if __name__ == "__main__":
    sys.exit(main())
