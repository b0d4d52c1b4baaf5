"""The four modalities: their input flag, catalogue reader, media loader and run defaults."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m3l.catalog import MEDIA_EXTENSIONS, SAMPLES, Catalogue, Item, image_extensions, read_media, read_plots
from m3l.media import LoaderOptions
from m3l.media.image import add_arguments as image_arguments

# What to run first when a link file (URLs) is given as the catalogue; docs/media.md
POSTER_DOWNLOAD = "python src/download_posters.py --links {links} --out media/poster, then --posters media/poster"
TRAILER_DOWNLOAD = (".venvs/download/bin/python src/download_trailers.py --links {links} --out media/trailers, "
                    "then --trailers media/trailers/trailers.tsv")


def no_extra_arguments(parser: argparse.ArgumentParser) -> None:
    """Modalities whose loader needs options of its own replace this in their table row."""


@dataclass(frozen=True)
class Modality:
    name: str
    input_flag: str
    input_help: str
    default_input: Path
    read_catalogue: Callable[[Path], Catalogue]
    loader: str  # "module": its loader_for(encoders, options) returns the picklable item → media function
    script: str  # its extract script in src/, run by extract_all.py
    batch_size: int
    workers: int
    longest_first: bool = False  # order items by input length, so batches pad little
    add_arguments: Callable[[argparse.ArgumentParser], None] = no_extra_arguments
    encoder_base: str = "m3l.models.base:Encoder"  # what its loader asks of an encoder: a module:Class spec subclasses it

    def make_loader(self, encoders: list, options: LoaderOptions) -> Callable[[Item], Any]:
        return importlib.import_module(self.loader).loader_for(encoders, options)


MODALITIES = {
    m.name: m
    for m in (
        Modality("text", "--plots", "TSV with a header row: movie_id<TAB>plot", SAMPLES / "plots.tsv",
                 read_plots, "m3l.media.text", script="extract_text.py", batch_size=32, workers=0, longest_first=True),
        Modality("image", "--posters", "folder of <id>.<ext> posters, or a TSV mapping movie_id to an image path",
                 SAMPLES / "poster", lambda path: read_media(path, image_extensions(), POSTER_DOWNLOAD),
                 "m3l.media.image", script="extract_images.py", batch_size=32, workers=2,
                 add_arguments=image_arguments),
        Modality("audio", "--trailers", "TSV mapping movie_id to a trailer path, or a folder of <id>.<ext> files",
                 SAMPLES / "trailers.tsv", lambda path: read_media(path, MEDIA_EXTENSIONS, TRAILER_DOWNLOAD),
                 "m3l.media.audio", script="extract_audio.py", batch_size=8, workers=2,
                 encoder_base="m3l.models.audio:AudioEncoder"),
        Modality("video", "--trailers", "TSV mapping movie_id to a trailer path, or a folder of <id>.<ext> files",
                 SAMPLES / "trailers.tsv", lambda path: read_media(path, MEDIA_EXTENSIONS, TRAILER_DOWNLOAD),
                 "m3l.media.video", script="extract_video.py", batch_size=8, workers=2,
                 encoder_base="m3l.models.video:VideoEncoder"),
    )
}


def inputs_by_flag() -> dict[str, tuple[str, ...]]:
    """Each catalogue input option and the modalities it feeds (--trailers: audio and video)."""
    fed: dict[str, tuple[str, ...]] = {}
    for modality in MODALITIES.values():
        fed[modality.input_flag] = (*fed.get(modality.input_flag, ()), modality.name)
    return fed


def add_catalogue_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    """One option per catalogue input (--plots, --posters, --trailers), read by `catalogue_inputs`."""
    for flag, fed in inputs_by_flag().items():
        parser.add_argument(flag, type=Path, help=f"{MODALITIES[fed[0]].input_help}: {purpose}")


def catalogue_inputs(args: argparse.Namespace) -> dict[str, Path]:
    """Modality → the catalogue file given for it by `add_catalogue_arguments`' options."""
    given = {flag: getattr(args, flag.removeprefix("--").replace("-", "_")) for flag in inputs_by_flag()}
    return {modality: given[flag] for flag, fed in inputs_by_flag().items() for modality in fed
            if given[flag] is not None}


def read_catalogues(inputs: dict[str, Path]) -> dict[str, Catalogue]:
    """Modality → its catalogue, each file read once (the trailer map serves audio and video)."""
    read: dict[Path, Catalogue] = {}
    for modality, path in inputs.items():
        if path not in read:
            read[path] = MODALITIES[modality].read_catalogue(path)
    return {modality: read[path] for modality, path in inputs.items()}
