"""Export features for MMRec: <to>/<modality>/<model>.npy, row i = the item of MMRec index i, named as
M3L's MMRec configs read them (text/clip_text.npy, image/clip_image.npy, audio/ast.npy, ...). Or, with
--format elliot, for Elliot and Ducho: a folder <to>/<modality>/<model>/ of <id>.npy vectors."""

import argparse
import sys
from pathlib import Path

from m3l.errors import exit_code
from m3l.readers.mmrec import FILL_POLICIES, FORMATS, PAIR_FILE, export
from m3l.store.layout import add_layout_argument


def _pair(text: str) -> tuple[str, str]:
    names = [name.strip() for name in text.split(",")]
    if len(names) != 2 or not all(names):
        raise argparse.ArgumentTypeError("expected VISION,TEXT: two models, e.g. vit,minilm")
    return names[0], names[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("features"), help="feature root (default: features)")
    parser.add_argument("--item-map", type=Path,
                        help="TSV with a header row: movie id, MMRec item index (e.g. MMRec's i_id_mapping.csv); "
                             "needed for mmrec, with elliot only its ids are written")
    parser.add_argument("--to", type=Path, required=True, help="folder to write <modality>/<model>.npy into")
    parser.add_argument("--models", help="comma-separated models or folders (default: every model found)")
    parser.add_argument("--missing", choices=FILL_POLICIES, default="zeros",
                        help="row of an item without a vector: zeros, or the mean of the model's vectors "
                             "(default: zeros)")
    parser.add_argument("--format", choices=FORMATS, default="mmrec",
                        help="mmrec: one matrix per model; elliot: a folder of <id>.npy per model (default: mmrec)")
    parser.add_argument("--pair", type=_pair, metavar="VISION,TEXT",
                        help=f"also write <to>/{PAIR_FILE}: MMRec's vision_feature_file and text_feature_file "
                             "lines for these two exported models")
    add_layout_argument(parser)
    args = parser.parse_args(argv)
    models = [name.strip() for name in args.models.split(",") if name.strip()] if args.models else None

    def run() -> None:
        for exported in export(args.output, args.item_map, args.to, models, args.missing, args.format, args.pair,
                               args.layout):
            print(exported)
        if args.pair:
            print(f"MMRec dataset config lines -> {args.to / PAIR_FILE}")

    return exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
