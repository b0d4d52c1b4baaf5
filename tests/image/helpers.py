"""Running the poster extractor in-process through its real CLI, and reading what it wrote."""

from __future__ import annotations

from pathlib import Path

from m3l.cli import main
from m3l.models import models_of

MODELS = tuple(info.name for info in models_of("image"))


def extract(store: Path, posters: Path, output: Path, *options: object) -> int:
    argv = ["--posters", posters, "--models-dir", store, "--output", output, *options]
    return main("image", [str(arg) for arg in argv])


def log_lines(output: Path, model: str, movie_id: str) -> list[str]:
    """`<status> <reason>` of each log line about `movie_id`."""
    lines = (output / f"log_{model}.txt").read_text().splitlines()
    return [line.split(" ", 3)[3] for line in lines if line.split(" ")[2] == movie_id]


def tsv_map(path: Path, posters: dict[str, Path]) -> Path:
    path.write_text("movie_id\tposter\n" + "".join(f"{i}\t{p}\n" for i, p in posters.items()))
    return path
