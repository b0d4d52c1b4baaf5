"""Fill the model store with the published weights (needs internet; copy the store to offline machines).

--check re-hashes what the store holds against each entry's MANIFEST.json instead:
one line per problem, exit 2 when there is any.
"""

import argparse
import sys
from pathlib import Path

from m3l import models
from m3l.errors import UserError, exit_code
from m3l.model_store import ModelStore, fill_command

MODALITIES = ("text", "image", "audio", "video")


def main(argv: list[str] | None = None, modalities: tuple[str, ...] = MODALITIES) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modality", choices=(*modalities, "all"), default="all")
    parser.add_argument("--models", help="comma-separated models of that modality (default: all of them)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="model store (default: models)")
    parser.add_argument("--check", action="store_true", help="re-hash the store against its manifests; no network")
    args = parser.parse_args(argv)
    wanted = modalities if args.modality == "all" else (args.modality,)
    names = [name.strip() for name in (args.models or "").split(",") if name.strip()]
    store = ModelStore(args.models_dir)
    named = wanted[0] if len(wanted) == 1 else "all"
    fill = fill_command(args.models_dir, named)

    def chosen() -> list[models.ModelInfo]:
        if names and len(wanted) > 1:
            raise UserError("--models needs --modality (model names are per modality)")
        return [info for modality in wanted for info in models.resolve(names or None, modality)]

    def download() -> None:
        for info in chosen():
            for path in store.require(info.files, fill):
                print(f"{info.name}: {path}")

    def check() -> None:
        entries = list(dict.fromkeys(entry for info in chosen() for entry in info.files))
        problems = [problem for entry in entries for problem in store.check(entry)]
        for problem in problems:
            print(problem)
        if problems:
            raise UserError(f"{len(problems)} problem(s) in the store {args.models_dir}; download the "
                            f"named entries again (delete them first) with {fill}")
        present = [entry for entry in entries if store.path(entry).exists()]
        print(f"{len(present)} entries checked, all files match their manifests "
              f"({len(entries) - len(present)} not in the store)")

    return exit_code(check if args.check else download)


if __name__ == "__main__":
    sys.exit(main())
