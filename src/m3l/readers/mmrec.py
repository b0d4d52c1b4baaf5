"""Export to MMRec: one `<modality>/<model>.npy` matrix per model, row i = the item of MMRec index i,
named as M3L's MMRec configs name them; or to Elliot and Ducho: a folder of `<id>.npy` per model.

The item map is MMRec's `i_id_mapping.csv`: tab-separated, a header row, the movie id in
the first column and the item index in the second, whatever the columns are called.
Indices must be exactly 0..n-1, each once, and each movie id may appear once; anything
else cannot be aligned and stops the export before any file is written.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m3l.catalog import check_folder_path
from m3l.errors import UserError
from m3l.models import ModelInfo
from m3l.models.spec import SpecInfo
from m3l.readers.features import load_features, load_ids
from m3l.store.codec import canonical_id
from m3l.store.layout import FeatureRoot
from m3l.store.writer import atomic_output

FILL_POLICIES = ("zeros", "mean")
FORMATS = ("mmrec", "elliot")
PAIR_FILE = "mmrec_features.yaml"


def read_item_map(path: Path) -> list[str]:
    """The movie id of each MMRec item index: element i is the id of item i."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read item map {path}: {error}") from None
    rows = [(number, row) for number, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter="\t"), 1)
            if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise UserError(f"item map {path} has no rows under its header (expected movie_id<TAB>item_index)")
    id_of: dict[int, str] = {}
    line_of_id: dict[str, int] = {}
    for number, row in rows[1:]:
        movie_id, index = _parse_row(path, number, row)
        if index in id_of:
            raise UserError(f"item map {path} line {number}: item index {index} appears twice")
        if movie_id in line_of_id:
            raise UserError(f"item map {path} line {number}: movie id {movie_id} already mapped on line "
                            f"{line_of_id[movie_id]}")
        id_of[index], line_of_id[movie_id] = movie_id, number
    gaps = sorted(set(range(len(id_of))) - id_of.keys())
    if gaps:
        raise UserError(f"item map {path}: item indices must be 0..{len(id_of) - 1} without gaps, "
                        f"but {gaps[0]} is missing (largest index {max(id_of)})")
    return [id_of[index] for index in range(len(id_of))]


def _parse_row(path: Path, number: int, row: list[str]) -> tuple[str, int]:
    cells = [cell.strip() for cell in row]
    if len(cells) < 2 or not cells[0]:
        raise UserError(f"item map {path} line {number}: expected movie_id<TAB>item_index, got {row!r}")
    if not (cells[1].isascii() and cells[1].isdigit()):
        raise UserError(f"item map {path} line {number}: item index {cells[1]!r} is not a non-negative integer")
    return canonical_id(cells[0]), int(cells[1])


def align(item_ids: list[str], ids: list[str], matrix: np.ndarray, fill: str = "zeros") -> tuple[np.ndarray, int]:
    """Row i = the vector of item_ids[i]; items without one get zeros or the mean of the found rows.

    Returns the aligned matrix and how many items had a vector.
    """
    if fill not in FILL_POLICIES:
        raise UserError(f"unknown fill policy {fill!r}; choose from {', '.join(FILL_POLICIES)}")
    row_of = {movie_id: row for row, movie_id in enumerate(ids)}
    rows = np.array([row_of.get(movie_id, -1) for movie_id in item_ids], dtype=np.int64)
    found = rows >= 0
    aligned = np.zeros((len(item_ids), matrix.shape[1]), dtype=np.float32)
    aligned[found] = matrix[rows[found]]
    if fill == "mean" and found.any():
        aligned[~found] = aligned[found].mean(axis=0)
    return aligned, int(found.sum())


def file_stem(info: ModelInfo) -> str:
    """The exported file's name without suffix: M3L's MMRec names for the twelve (`clip_text.npy`,
    `audio/ast.npy`), a spec model's output folder (already path-safe)."""
    return info.folder if isinstance(info, SpecInfo) else info.name.replace("-", "_")


@dataclass(frozen=True)
class Exported:
    info: ModelInfo
    path: Path
    items: int
    found: int  # items with a vector
    unused: int  # vectors of movies not in the item map

    def __str__(self) -> str:
        missing = self.items - self.found
        return (f"{self.info.modality}/{self.info.name}: {self.found}/{self.items} items have a vector "
                f"({100 * self.found / self.items:.1f}%), {missing} filled, {self.unused} vectors not in "
                f"the item map -> {self.path}")


@dataclass(frozen=True)
class ExportedFolder:
    info: ModelInfo
    path: Path
    written: int

    def __str__(self) -> str:
        return f"{self.info.modality}/{self.info.name}: {self.written} vectors -> {self.path}/<id>.npy"


def export(output: Path, item_map: Path | None, target: Path, models: list[str] | None = None,
           fill: str = "zeros", fmt: str = "mmrec", pair: tuple[str, str] | None = None,
           layout: str | None = None) -> list[Exported | ExportedFolder]:
    """Write the chosen models (default: all found under `output`) for a recommender framework:
    `mmrec`, one `<target>/<modality>/<stem>.npy` matrix aligned with the item map (and, for `pair`,
    a vision and a text model, MMRec's two dataset config lines in `<target>/mmrec_features.yaml`);
    `elliot`, a folder `<target>/<modality>/<stem>/` of `<id>.npy` vectors (Elliot, Ducho), only the
    item map's ids when one is given.

    The ids of every model are checked against the item map before anything is written,
    so a model sharing no id with it stops the export without leaving half of it behind.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if item_map is None and fmt == "mmrec":
        raise UserError("--item-map is needed for --format mmrec: it gives the row of each movie")
    if pair and fmt != "mmrec":
        raise UserError("--pair writes MMRec's dataset config lines: it needs --format mmrec")
    item_ids = read_item_map(item_map) if item_map is not None else None
    check_folder_path(target, "--to")
    root = FeatureRoot(output, layout)
    infos = root.resolve(models) if models else root.found()
    if not infos:
        raise UserError(f"no features under {output}")
    paired = _pair(infos, pair) if pair else None
    if item_ids is not None:
        _check_overlap(root, infos, item_ids, item_map)
    for modality in {info.modality for info in infos}:
        check_folder_path(target / modality, "the export folder")
    for info in infos if fmt == "elliot" else ():
        check_folder_path(target / info.modality / file_stem(info), "the export folder")
    if fmt == "elliot":
        return [_export_folder(root, info, item_ids, target / info.modality / file_stem(info)) for info in infos]
    exported = [_export_one(root, info, item_ids, _matrix_path(target, info), fill) for info in infos]
    if paired:
        _write_pair(target, *paired)
    return exported


def _matrix_path(target: Path, info: ModelInfo) -> Path:
    return target / info.modality / f"{file_stem(info)}.npy"


def _pair(infos: list[ModelInfo], pair: tuple[str, str]) -> tuple[ModelInfo, ModelInfo]:
    """The exported models named as MMRec's vision and text features."""
    by_key = {key: info for info in infos for key in (info.name, info.folder)}
    missing = [name for name in pair if name not in by_key]
    if missing:
        raise UserError(f"--pair {','.join(pair)}: {', '.join(missing)} is not among the exported models "
                        f"({', '.join(info.name for info in infos)})")
    return by_key[pair[0]], by_key[pair[1]]


def _write_pair(target: Path, vision: ModelInfo, text: ModelInfo) -> Path:
    lines = "".join(f'{key}: "{_matrix_path(Path(), info).as_posix()}"\n'
                    for key, info in (("vision_feature_file", vision), ("text_feature_file", text)))
    path = target / PAIR_FILE
    with atomic_output(path) as tmp:
        tmp.write_text(lines, encoding="utf-8")
    return path


def _check_overlap(output: FeatureRoot, infos: list[ModelInfo], item_ids: list[str], item_map: Path) -> None:
    wanted = set(item_ids)
    for info in infos:
        ids = load_ids(output, info)
        if wanted.isdisjoint(ids):
            raise UserError(f"no movie id of {item_map} has a {info.name} vector (ids there look like "
                            f"{item_ids[0]!r}, here like {ids[0] if ids else 'nothing'!r}): wrong item map?")


def _export_one(output: FeatureRoot, info: ModelInfo, item_ids: list[str], path: Path, fill: str) -> Exported:
    ids, matrix = load_features(output, info)
    aligned, found = align(item_ids, ids, matrix, fill)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, aligned)
    return Exported(info, path, len(item_ids), found, unused=len(set(ids).difference(item_ids)))


def _export_folder(output: FeatureRoot, info: ModelInfo, item_ids: list[str] | None, folder: Path) -> ExportedFolder:
    ids, matrix = load_features(output, info)
    wanted = None if item_ids is None else set(item_ids)
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for movie_id, vector in zip(ids, matrix):
        if wanted is None or movie_id in wanted:
            with atomic_output(folder / f"{movie_id}.npy") as tmp, open(tmp, "wb") as handle:
                np.save(handle, vector)
            written += 1
    return ExportedFolder(info, folder, written)
