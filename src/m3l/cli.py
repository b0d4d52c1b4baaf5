"""The command-line contract shared by every extract script."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from m3l import config, engines, models, progress
from m3l.catalog import Catalogue, check_folder_path, read_ids
from m3l.models import spec
from m3l.errors import UserError, stoppable_exit_code
from m3l.media import LoaderOptions
from m3l.modalities import MODALITIES, Modality
from m3l.model_store import ModelStore, fill_command
from m3l.models.base import Encoder
from m3l.store import provenance, runs
from m3l.store.consolidate import consolidate
from m3l.store.layout import FeatureRoot, add_layout_argument
from m3l.store.locks import model_locks
from m3l.store.writer import FeatureStore



def build_parser(modality: Modality, default_models: list[str], description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(modality.input_flag, dest="input", type=Path, default=modality.default_input,
                        help=f"{modality.input_help} (default: {modality.default_input})")
    parser.add_argument("--output", type=Path, default=Path("features"), help="output root (default: features)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="model store (default: models)")
    parser.add_argument("--models", default=",".join(default_models),
                        help=f"comma-separated models (default: {','.join(default_models)}), "
                             f"{spec.families_help(modality.name)} (docs/models.md)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "tf32", "fp16"),
                        help="auto follows the published recipe (fp32, and float16 autocast for whisper and ast "
                             "on a GPU); tf32 and fp16 are faster on Ampere and newer GPUs, about 1e-3 and more "
                             "off the published vectors (default: auto)")
    parser.add_argument("--batch-size", type=_positive, default=modality.batch_size,
                        help=f"items (video: clips) per forward pass (default: {modality.batch_size})")
    parser.add_argument("--workers", type=_workers, default="auto",
                        help=f"decoding worker processes, 0 decodes inline; auto: {modality.workers} on a CPU"
                             + (f", one per core but one (at most {engines.MAX_AUTO_WORKERS}) on a GPU"
                                if modality.workers else "") + " (default: auto)")
    parser.add_argument("--limit", type=_positive, help="process only the first N catalogue items")
    parser.add_argument("--ids", type=Path, help="process only the ids listed in this file, one a line")
    parser.add_argument("--no-consolidate", action="store_true", help="skip the Parquet/HDF5 consolidation")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="write into model folders made with other weights, recipe or precision; "
                             "every id written is logged in the folder's provenance.jsonl")
    parser.add_argument("--progress-every", type=_positive_float, default=60.0, metavar="SECONDS",
                        help="where stderr is not a terminal (a log), a progress line per model this often "
                             "(default: 60)")
    parser.add_argument("--adopt-as", type=_label, metavar="LABEL",
                        help="write into a model folder that holds vectors and no provenance record (e.g. the "
                             "published M3L features), recording the ids there now as adopted under LABEL "
                             "(e.g. m3l-published) and this run's own under its provenance")
    modality.add_arguments(parser)
    add_layout_argument(parser)
    engines.add_arguments(parser)
    group = parser.add_argument_group("configuration (see docs/config.md)")
    group.add_argument("--config", type=Path, metavar="FILE",
                       help=f"TOML file: shared defaults at the top, options of this script under [{modality.name}]; "
                            "options given here win")
    group.add_argument("--set", action="append", default=[], metavar="MODALITY.OPTION=VALUE",
                       help=f"override one config option (e.g. {modality.name}.batch-size=16); repeatable")
    group.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    return parser


def parse_arguments(modality: str, argv: list[str] | None = None, default_models: list[str] | None = None,
                    description: str | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The command line over the defaults of its --config and --set (a single-model script keeps its
    model); a config mistake is a UserError naming the key."""
    parsers = {name: build_parser(row, [info.name for info in models.models_of(name)], f"Extract {name} features.")
               for name, row in MODALITIES.items()}
    if default_models or description:
        names = default_models or [info.name for info in models.models_of(modality)]
        parsers[modality] = build_parser(MODALITIES[modality], names, description or f"Extract {modality} features.")
    parser = parsers[modality]
    first = parser.parse_args(argv)
    if first.config is not None or first.set:
        folder = first.config.absolute().parent if first.config is not None else Path()
        defaults = config.modality_defaults(config.read(first.config, first.set), folder, parsers, modality)
        if default_models:
            defaults.pop("models", None)
        parser.set_defaults(**defaults)
    return parser, parser.parse_args(argv)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _label(text: str) -> str:
    if not re.fullmatch(r"[\w.@+-]{1,64}", text, re.ASCII):
        raise argparse.ArgumentTypeError("must be 1 to 64 letters, digits or . _ @ + -")
    return text


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be auto or at least 0")
    return value


def prepare_output(output: Path) -> Path:
    check_folder_path(output, "--output")
    try:
        output.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=output).close()
    except OSError as error:
        raise UserError(f"output folder {output} is not writable: {error.strerror or error}") from None
    return output


def load_catalogue(modality: Modality, args: argparse.Namespace) -> Catalogue:
    catalogue = modality.read_catalogue(args.input)
    if args.ids:
        catalogue = catalogue.only(read_ids(args.ids))
    catalogue = catalogue.limit(args.limit)
    if modality.longest_first:
        catalogue.items.sort(key=lambda item: len(item.source), reverse=True)
    return catalogue


def model_infos(modality: Modality, args: argparse.Namespace) -> list[models.ModelInfo]:
    return models.resolve([name.strip() for name in args.models.split(",") if name.strip()], modality.name)


def model_files(modality: Modality, args: argparse.Namespace, infos: list[models.ModelInfo]) -> list[list[Path]]:
    """Each model's files in the model store; a missing one is a user error naming the fill command."""
    store = ModelStore(args.models_dir)
    return [store.require(info.files, fill_command(args.models_dir, modality.name, info.name)) for info in infos]


def create_encoders(modality: Modality, args: argparse.Namespace, infos: list[models.ModelInfo],
                    paths: list[list[Path]], device: str) -> list[Encoder]:
    """The encoders, weights not yet loaded: imports their libraries (torch, transformers: seconds)."""
    encoders = []
    for info, info_paths in zip(infos, paths):
        try:
            cls = models.encoder_class(info)
        except ImportError as error:
            raise UserError(f"{info.name} needs {error.name or error}, which this venv lacks; "
                            f"install {modality.name}_reqs.txt") from None
        encoders.append(cls(info, info_paths, device, args.precision))
    return encoders


def extract(modality: Modality, args: argparse.Namespace, command: str, resolved: str) -> None:
    """The run of one extract script; `command` and its `resolved` config are recorded in the output folder."""
    engine = engines.select(args)
    catalogue = load_catalogue(modality, args)
    output = prepare_output(args.output)
    infos = model_infos(modality, args)
    paths = model_files(modality, args, infos)
    root = FeatureRoot(output, args.layout)
    with runs.recorded(output, command, args.config, resolved, [info.name for info in infos]), \
            model_locks(root, infos):
        stores = {info.folder: FeatureStore(root, info, lend_written=not args.no_consolidate) for info in infos}
        with printed_summaries(stores.values()):  # from here on, however the run ends (Ctrl-C while loading too)
            encoders = create_encoders(modality, args, infos, paths, engine.device(args))
            for encoder in encoders:
                stores[encoder.info.folder].claim(provenance_of(encoder, args.models_dir), args.allow_mixed,
                                                  args.adopt_as)
            for store in stores.values():
                for movie_id, reason in catalogue.rejected:
                    store.skip(movie_id, reason)
                for movie_id, reason in catalogue.warnings:
                    store.log(movie_id, "warning", reason)
            with progress.progress(args.progress_every) as counters:
                loader = modality.make_loader(encoders, LoaderOptions.of(args))
                workers = engine.workers(args.workers, modality, encoders[0].device)
                engines.run(engine, catalogue.items, loader, encoders, stores, args.batch_size, workers, counters,
                            args)
        if not args.no_consolidate:
            for store in stores.values():
                consolidate(root, store.info, store.scan)


def provenance_of(encoder: Encoder, models_dir: Path) -> dict:
    info = encoder.info
    weights = ModelStore(models_dir).weights_digest(info.files)
    return provenance.record(info.name, weights, info.recipe, encoder.arithmetic, encoder.device, info.libraries)


@contextmanager
def printed_summaries(stores: Iterable[FeatureStore]) -> Iterator[None]:
    """Print each model's summary when the run ends, however it ends (finished, Ctrl-C, disk full)."""
    try:
        yield
    finally:
        for store in stores:
            print(f"{store.finish()} (log: {store.log_path})", flush=True)


def main(modality: str, argv: list[str] | None = None, default_models: list[str] | None = None,
         description: str | None = None) -> int:
    """Entry point of an extract script; returns the process exit code."""
    def run() -> None:
        parser, args = parse_arguments(modality, argv, default_models, description)
        if args.print_config:
            print(config.dumps({modality: config.resolved(parser, args)}), end="")
            return
        progress.keep_library_bars_out()
        command = shlex.join([sys.executable, sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
        extract(MODALITIES[modality], args, command, config.dumps({modality: config.resolved(parser, args)}))

    return stoppable_exit_code(run, "interrupted: every file written so far is complete; "
                                    "run the same command again to resume")
