"""Fill the model store with the published weights (needs internet; copy the store to offline machines)."""

import argparse
import sys
from pathlib import Path

from m3l import models
from m3l.errors import exit_code
from m3l.model_store import ModelStore

MODALITIES = ("text", "image", "audio", "video")


def main(argv: list[str] | None = None, modalities: tuple[str, ...] = MODALITIES) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modality", choices=(*modalities, "all"), default="all")
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="model store (default: models)")
    args = parser.parse_args(argv)
    wanted = modalities if args.modality == "all" else (args.modality,)
    store = ModelStore(args.models_dir)
    named = wanted[0] if len(wanted) == 1 else "all"
    fill = f"python src/download_models.py --modality {named} --models-dir {args.models_dir}"

    def download() -> None:
        for info in models.MODELS.values():
            if info.modality in wanted:
                for path in store.require(info.files, fill):
                    print(f"{info.name}: {path}")

    return exit_code(download)


if __name__ == "__main__":
    sys.exit(main())
