"""Compare the features of two folders model by model: do the vectors of A equal those of B?

A and B are feature roots or single model folders, in our layout or the published M3L one
(`features_json_format/`, `1_text_feat/`, `4_audio_feat/whisper/`, ...). B is the reference:
relative differences are taken against its vectors.

Exit code: 0 when every shared id is within its model's tolerance, 1 when one is not (or a
model has no id in both), 2 for a usage error (unreadable folder, different dimensions).
"""

import argparse
import json
import sys
from pathlib import Path

from m3l.errors import exit_code
from m3l.readers.compare import compare, parse_tolerances, table, verdict
from m3l.store.layout import add_layout_argument


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="feature root or model folder")
    parser.add_argument("b", type=Path, help="feature root or model folder: the reference")
    parser.add_argument("--models", help="comma-separated models to compare (default: every model on both sides)")
    parser.add_argument("--tolerance", action="append", default=[], metavar="MODEL=X",
                        help="largest relative difference allowed for MODEL's ids, instead of its default "
                             "(repeatable; defaults: 1e-4 for fp32, 5e-3 when a side is tf32 or fp16, 1e-2 "
                             "for vggish)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON, one object per model")
    add_layout_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    models = [name.strip() for name in args.models.split(",") if name.strip()] if args.models else None
    ok = [True]

    def run() -> None:
        results = compare(args.a, args.b, models, parse_tolerances(args.tolerance), args.layout)
        ok[0], summary = verdict(results)
        if args.json:
            print(json.dumps({"ok": ok[0], "models": [result.as_dict() for result in results]}, indent=2))
        else:
            print("\n".join([*table(results), summary]))

    return exit_code(run) or (0 if ok[0] else 1)


if __name__ == "__main__":
    sys.exit(main())
