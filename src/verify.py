"""Audit a feature folder before publishing it: per model, the ids expected, present and missing
(with the logged reason), files that do not parse, wrong lengths, NaN/Inf, all-zero vectors,
stray temporary files and consolidated tables that disagree with the JSON files.

Exit code: 0 when nothing is wrong, 1 when something is, 2 for a usage error.
"""

import argparse
import sys
from pathlib import Path

from m3l.errors import UserError, exit_code
from m3l.modalities import add_catalogue_arguments, catalogue_inputs, inputs_by_flag, read_catalogues
from m3l.readers.audit import audit
from m3l.store.layout import FeatureRoot, add_layout_argument


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("features"), help="output root (default: features)")
    add_catalogue_arguments(parser, "the ids its models should cover")
    parser.add_argument("--models", help="comma-separated models or folders (default: every model found)")
    parser.add_argument("--accept-logged", action="store_true",
                        help="missing ids whose failure is logged (corrupt input, ...) are not problems")
    add_layout_argument(parser)
    return parser.parse_args(argv)


def verify(args: argparse.Namespace) -> list[str]:
    """Print the audit; return what is wrong (model folders, catalogues no model covers)."""
    if not args.output.is_dir():
        raise UserError(f"output folder not found: {args.output}")
    inputs = catalogue_inputs(args)
    catalogues = {modality: set(catalogue.usable_ids()) for modality, catalogue in read_catalogues(inputs).items()}
    chosen = None if args.models is None else FeatureRoot(args.output, args.layout).resolve(args.models.split(","))
    audits = audit(args.output, catalogues, chosen, args.layout)
    if not audits:
        raise UserError(f"no model folder or consolidated table under {args.output}")
    for result in audits:
        print("\n".join(result.report(args.accept_logged)))
    covered = {result.info.modality for result in audits}
    uncovered = [flag for flag, fed in inputs_by_flag().items() if inputs.keys() & set(fed) and not covered & set(fed)]
    for flag in uncovered:
        print(f"{flag} was given but none of its models has features under {args.output}")
    bad = [result.folder for result in audits if result.problems(args.accept_logged)] + uncovered
    print(f"verify: {'OK' if not bad else 'problems in ' + ', '.join(bad)} ({len(audits)} models checked)")
    return bad


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bad: list[str] = []
    return exit_code(lambda: bad.extend(verify(args))) or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())
