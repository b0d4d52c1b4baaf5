"""Catalogue readers: which movies exist and where their inputs are.

Every reader returns a `Catalogue`: the usable items plus the rejected rows with a
reason, so that the engine can log each rejection in every requested model's log.
Ids are validated here once; nothing downstream ever builds a path from an
unvalidated id.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from m3l.errors import UserError

MAX_ID_LENGTH = 64
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tiff", ".tif", ".webp")
MEDIA_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mp3", ".m4a", ".aac",
                    ".wav", ".flac", ".ogg", ".opus")


@dataclass(frozen=True)
class Item:
    """One movie's input: `source` is the plot text for text, a file path otherwise."""

    id: str
    source: str


@dataclass
class Catalogue:
    items: list[Item] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (id or row label, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # items kept, with a caveat

    def limit(self, n: int | None) -> Catalogue:
        return self if n is None else Catalogue(self.items[:n], self.rejected, self.warnings)

    def only(self, wanted: set[str]) -> Catalogue:
        return Catalogue([item for item in self.items if item.id in wanted], self.rejected, self.warnings)


def id_problem(movie_id: str) -> str | None:
    """Why `movie_id` cannot be used as a file name, or None when it is fine."""
    if not movie_id:
        return "empty id"
    if len(movie_id) > MAX_ID_LENGTH:
        return f"id longer than {MAX_ID_LENGTH} characters"
    if not _ID_PATTERN.fullmatch(movie_id):
        return "invalid id (allowed: letters, digits, '_' and '-')"
    if movie_id.upper() in _WINDOWS_RESERVED:
        return "invalid id (reserved file name)"
    return None


def printable(text: str) -> str:
    """An id or value shown in a log line: one line, bounded length."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 80 else shown[:77] + "..."


class _Builder:
    """Collects items, rejecting invalid ids and keeping the first of duplicate ids."""

    def __init__(self) -> None:
        self.catalogue = Catalogue()
        self._seen: set[str] = set()

    def reject(self, label: str, reason: str) -> None:
        self.catalogue.rejected.append((printable(label), reason))

    def add(self, movie_id: str, source: str) -> None:
        problem = id_problem(movie_id)
        if problem:
            self.reject(movie_id, problem)
        elif movie_id in self._seen:
            self.reject(movie_id, "duplicate id (first one kept)")
        else:
            self._seen.add(movie_id)
            self.catalogue.items.append(Item(movie_id, source))


def _read_text(path: Path) -> tuple[str, bool]:
    """File text with a BOM stripped; the flag says whether bytes had to be replaced."""
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8-sig", errors="replace"), True


def _tsv_rows(text: str) -> list[list[str]]:
    csv.field_size_limit(sys.maxsize)
    return list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar='"'))


def read_plots(path: Path) -> Catalogue:
    """Plots TSV with a header row naming `movie_id` and `plot` (any column order)."""
    text, replaced = _read_text(path)
    rows = [row for row in _tsv_rows(text) if any(cell.strip() for cell in row)]
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "movie_id" not in header or "plot" not in header:
        raise UserError(f"{path}: the first row must be a header with columns 'movie_id' and 'plot'"
                        f" (found: {', '.join(header) or 'nothing'})")
    id_col, plot_col = header.index("movie_id"), header.index("plot")
    builder = _Builder()
    for line_no, row in enumerate(rows[1:], start=2):
        movie_id = row[id_col].strip() if id_col < len(row) else ""
        plot = row[plot_col].strip() if plot_col < len(row) else ""
        if not movie_id:
            builder.reject(f"row{line_no}", "missing movie_id")
        elif not plot:
            builder.reject(movie_id, "empty or missing plot")
        else:
            if replaced and "\ufffd" in plot:
                builder.catalogue.warnings.append((movie_id, "plot has bytes that are not UTF-8 (replaced)"))
            builder.add(movie_id, plot)
    return builder.catalogue


def read_media_map(path: Path) -> Catalogue:
    """TSV mapping `movie_id` to a media file path; the header row is optional.

    Relative paths resolve against the TSV's folder. Missing files are kept as items:
    the decoder reports them, so that they are logged per model like any bad file.
    """
    text, _ = _read_text(path)
    rows = [row for row in _tsv_rows(text) if any(cell.strip() for cell in row)]
    if rows and rows[0] and rows[0][0].strip().lower() in {"movie_id", "id", "movieid", "item_id"}:
        rows = rows[1:]
    builder = _Builder()
    for line_no, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[1].strip():
            builder.reject(row[0].strip() if row else f"row{line_no}", "row without a file path")
            continue
        media = Path(row[1].strip()).expanduser()
        builder.add(row[0].strip(), str(media if media.is_absolute() else path.parent / media))
    return builder.catalogue


def read_media_dir(folder: Path, extensions: tuple[str, ...]) -> Catalogue:
    """Folder of `<id>.<ext>` files. Of two files with one id, the first by name wins."""
    if not folder.is_dir():
        raise UserError(f"input folder not found: {folder}")
    builder = _Builder()
    for file in sorted(folder.iterdir(), key=lambda p: p.name):
        if file.is_file() and file.suffix.lower() in extensions:
            movie_id = file.stem
            if movie_id in builder._seen:
                builder.reject(movie_id, f"duplicate id: {file.name} ignored (another file of that id is used)")
            else:
                builder.add(movie_id, str(file))
    return builder.catalogue


def read_media(path: Path, extensions: tuple[str, ...]) -> Catalogue:
    """A media catalogue given as a folder of `<id>.<ext>` files or as a TSV map.

    Item paths are absolute, so that workers running elsewhere (the Ray engine) find them.
    """
    path = path.absolute()
    if path.is_dir():
        return read_media_dir(path, extensions)
    return read_media_map(path)


def read_ids(path: Path) -> set[str]:
    """The `--ids` file: one id a line, blank lines ignored."""
    text, _ = _read_text(path)
    return {line.strip() for line in text.splitlines() if line.strip()}
