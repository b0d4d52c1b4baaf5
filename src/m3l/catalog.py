"""Catalogue readers: which movies exist and where their inputs are.

Every reader returns a `Catalogue`: the usable items plus the rejected rows with a
reason, so that the engine can log each rejection in every requested model's log.
Ids are validated here once; nothing downstream ever builds a path from an
unvalidated id.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from m3l.errors import UserError

MAX_ID_LENGTH = 64
# The bundled sample catalogues, the extractors' default inputs: relative to the working directory (a
# checkout's root), like --output's and --models-dir's defaults, so an installed m3l never looks in site-packages
SAMPLES = Path("data")
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_INTEGER = re.compile(r"-?[0-9]+")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}
_VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")
_MEMORY_ROOT = "/dev/shm"  # a tmpfs under /dev: its regular files are files (media staged in memory)
REGULAR = "a regular file"
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
    # (id or entry name, note): items kept with a caveat, folder entries that are no items
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def usable_ids(self) -> list[str]:
        """The ids of the items a run computes: what verify.py expects vectors for."""
        return [item.id for item in self.items]

    def listed_ids(self) -> list[str]:
        """Every id the file lists, rejected rows' labels too: what report.py measures coverage against, so
        that a rejected row shows as missing with its logged reason."""
        return [*self.usable_ids(), *(label for label, _ in self.rejected)]

    def limit(self, n: int | None) -> Catalogue:
        return self if n is None else Catalogue(self.items[:n], self.rejected, self.warnings)

    def only(self, wanted: set[str]) -> Catalogue:
        """The items of the wanted ids, and only their rejections and notes (a folder entry's by its stem)."""
        def asked(label_note: tuple[str, str]) -> bool:
            return label_note[0] in wanted or Path(label_note[0]).stem in wanted

        return Catalogue([item for item in self.items if item.id in wanted],
                         list(filter(asked, self.rejected)), list(filter(asked, self.warnings)))


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


def collision_key(movie_id: str) -> str:
    """Ids with one key would collide: equal as integers (`12`, `012`) in the tables, or equal up to
    letter case as file names on case-insensitive file systems."""
    return str(int(movie_id)) if _INTEGER.fullmatch(movie_id) else movie_id.casefold()


def path_kind(path: Path) -> str:
    """What `path` is, links followed, in words: "a regular file", "a directory", "not found", ..."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return "a symbolic link to nothing" if path.is_symlink() else "not found"
    except OSError as error:
        return "a symbolic link loop" if error.errno == errno.ELOOP else f"unreadable ({error.strerror or error})"
    if kind := _KINDS.get(stat.S_IFMT(info.st_mode)):
        return kind
    real = os.path.realpath(path)
    if any(_under(real, root) for root in _VIRTUAL_ROOTS) and not _under(real, _MEMORY_ROOT):
        return f"in the kernel's virtual file systems ({real})"
    return REGULAR


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def check_folder_path(path: Path, what: str) -> None:
    """A UserError unless `path` is a folder or nothing yet (a folder is then made there)."""
    kind = path_kind(path)
    if kind not in ("not found", "a directory"):
        raise UserError(f"{what} {path} is {kind}, not a folder")


def image_extensions() -> tuple[str, ...]:
    """Every file extension of an image format PIL reads (of a GIF, as of any image, the first frame is used)."""
    from PIL import Image, ImageFile

    Image.init()
    stubs = {name for name, (factory, _) in Image.OPEN.items()
             if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)}
    return tuple(sorted(extension for extension, name in Image.registered_extensions().items()
                        if name in Image.OPEN and name not in stubs))


def printable(text: str) -> str:
    """An id or value shown in a log line: one line, bounded length."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 80 else shown[:77] + "..."


class _Builder:
    """Collects items, rejecting invalid ids and keeping the first of duplicate ids."""

    def __init__(self) -> None:
        self.catalogue = Catalogue()
        self._seen: dict[str, str] = {}  # collision key → the id kept

    def reject(self, label: str, reason: str) -> None:
        self.catalogue.rejected.append((printable(label), reason))

    def note(self, movie_id: str, row: Row) -> None:
        if row.note:
            self.catalogue.warnings.append((printable(movie_id or f"row{row.line}"), row.note))

    def kept(self, movie_id: str) -> str | None:
        """The id already kept that `movie_id` would collide with, if any."""
        return self._seen.get(collision_key(movie_id))

    def add(self, movie_id: str, source: str) -> None:
        problem = id_problem(movie_id)
        if problem:
            self.reject(movie_id, problem)
        elif (kept := self.kept(movie_id)) == movie_id:
            self.reject(movie_id, "duplicate id (first one kept)")
        elif kept is not None:
            self.reject(movie_id, f"id collides with {kept} (ids equal as numbers or up to letter case "
                                  "would share a file or a table row; first one kept)")
        else:
            self._seen[collision_key(movie_id)] = movie_id
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


@dataclass(frozen=True)
class Row:
    """One catalogue row: the line it starts on, its cells, and how it was read when that needs saying."""

    line: int
    cells: list[str]
    last: int = 0  # the line it ends on, when a quoted field spans lines
    note: str | None = None

    def cell(self, index: int) -> str:
        return self.cells[index].strip() if index < len(self.cells) else ""


def _lines(text: str) -> list[str]:
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def _quoted_rows(text: str) -> list[Row] | None:
    """The rows of `text` read as a quoted TSV, or None when its quotes do not pair up."""
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar='"', strict=True)
    rows, start = [], 1
    try:
        for cells in reader:
            end = reader.line_num
            note = f"a quoted field spans lines {start}-{end}: read as one row" if end > start else None
            rows.append(Row(start, cells, end, note))
            start = end + 1
    except csv.Error:
        return None
    return rows


def _line_rows(lines: list[str]) -> list[Row]:
    """One row per line: quoting applies within a line; a line whose quotes do not pair up is split as written."""
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(Row(number, next(csv.reader([line], delimiter="\t", strict=True), [])))
        except csv.Error:
            rows.append(Row(number, line.split("\t"), note=f"quotes on line {number} do not pair up: "
                                                             "read as this line alone, quotes kept as text"))
    return rows


def _could_be_row(line: str) -> bool:
    """Whether `line`, read alone, looks like a row: a tab after a valid id. A tab inside a quoted
    plot's later line has text before it that is no id (spaces, punctuation)."""
    first, tab, _ = line.partition("\t")
    return bool(tab) and id_problem(first.strip()) is None


def _tsv_rows(text: str) -> list[Row]:
    """The non-blank rows of a TSV: tab-separated lines, one row per line.

    A field spans lines only when the whole file reads as a valid quoted TSV and no
    spanned line could be a row of its own; otherwise every line is a row, and rows
    whose reading differs from their line carry a note, so the rows read always
    match the data lines or say why they do not.
    """
    lines = _lines(text)
    quoted = _quoted_rows(text)
    if quoted is None or any(_could_be_row(line) for row in quoted for line in lines[row.line:row.last]):
        rows = _line_rows(lines)
    else:
        rows = quoted
    return [row for row in rows if any(cell.strip() for cell in row.cells)]


def read_plots(path: Path) -> Catalogue:
    """Plots TSV with a header row naming `movie_id` and `plot` (any column order)."""
    text, replaced = _read_text(path)
    rows = _tsv_rows(text)
    header = [cell.strip().lower() for cell in rows[0].cells] if rows else []
    if "movie_id" not in header or "plot" not in header:
        raise UserError(f"{path}: the first row must be a header with columns 'movie_id' and 'plot'"
                        f" (found: {', '.join(header) or 'nothing'})")
    id_col, plot_col = header.index("movie_id"), header.index("plot")
    builder = _Builder()
    for row in rows[1:]:
        movie_id, plot = row.cell(id_col), row.cell(plot_col)
        builder.note(movie_id, row)
        if not movie_id:
            builder.reject(f"row{row.line}", "missing movie_id")
        elif not plot:
            builder.reject(movie_id, "empty or missing plot")
        else:
            if replaced and "\ufffd" in plot:
                builder.catalogue.warnings.append((movie_id, "plot has bytes that are not UTF-8 (replaced)"))
            builder.add(movie_id, plot)
    return builder.catalogue


_URL = re.compile(r"https?://", re.IGNORECASE)


def _without_header(rows: list[Row]) -> list[Row]:
    """A map's rows less its optional header row (named by its first cell)."""
    return rows[1:] if rows and rows[0].cell(0).lower() in {"movie_id", "id", "movieid", "item_id"} else rows


def read_media_map(path: Path, download: str = "") -> Catalogue:
    """TSV mapping `movie_id` to a media file path; the header row is optional.

    Relative paths resolve against the TSV's folder. Missing files are kept as items:
    the decoder reports them, so that they are logged per model like any bad file.
    A file of links (its first path is an http(s) URL) is a UserError naming `download`,
    the command that fetches them, with `{links}` standing for the file.
    """
    text, _ = _read_text(path)
    rows = _without_header(_tsv_rows(text))
    if rows and _URL.match(rows[0].cell(1)):
        raise UserError(f"{path} lists links ({printable(rows[0].cell(1))}), not media files: download them first "
                        f"with {download.format(links=path) or 'a download script'}")
    builder = _Builder()
    for row in rows:
        movie_id, media = row.cell(0), row.cell(1)
        builder.note(movie_id, row)
        if not media:
            builder.reject(movie_id or f"row{row.line}", "row without a file path")
            continue
        media_path = Path(media).expanduser()
        builder.add(movie_id, str(media_path if media_path.is_absolute() else path.parent / media_path))
    return builder.catalogue


def is_web_link(link: str) -> bool:
    """Whether `link` is an http(s) URL with a host; a malformed one (`http://[oops/x`) is none."""
    try:
        return bool(_URL.match(link) and urlsplit(link).hostname)
    except ValueError:
        return False


def read_links(path: Path) -> Catalogue:
    """A link file, as M³L's REPRO_poster_links.tsv and REPRO_trailer_links.tsv: `movie_id<TAB>URL` rows
    under an optional header. A row whose link is no http(s) URL with a host is rejected."""
    text, _ = _read_text(path)
    builder = _Builder()
    for row in _without_header(_tsv_rows(text)):
        movie_id, link = row.cell(0), row.cell(1)
        builder.note(movie_id, row)
        if not link:
            builder.reject(movie_id or f"row{row.line}", "row without a link")
        elif not is_web_link(link):
            builder.reject(movie_id or f"row{row.line}", f"not an http(s) URL: {printable(link)}")
        else:
            builder.add(movie_id, link)
    return builder.catalogue


def read_movielens_links(path: Path) -> Catalogue:
    """MovieLens `links.csv` (`movieId,imdbId,tmdbId`): each movie's TMDB id as its item's source.

    A movie without a TMDB id (MovieLens leaves the cell empty) is rejected with that reason.
    """
    text, _ = _read_text(path)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    if not rows or not {"movieId", "tmdbId"} <= set(rows[0]):
        raise UserError(f"{path}: not a MovieLens links.csv (a header row with movieId and tmdbId expected)")
    builder = _Builder()
    for row in rows:
        movie_id, tmdb_id = (row["movieId"] or "").strip(), (row["tmdbId"] or "").strip()
        if not tmdb_id:
            builder.reject(movie_id, "no TMDB id in links.csv")
        elif not re.fullmatch(r"[0-9]+(\.0)?", tmdb_id):
            builder.reject(movie_id, f"TMDB id is not a number: {printable(tmdb_id)}")
        else:
            builder.add(movie_id, tmdb_id.removesuffix(".0"))
    return builder.catalogue


def read_media_dir(folder: Path, extensions: tuple[str, ...]) -> Catalogue:
    """Folder of `<id>.<ext>` files. Of two files with one id, the first by name wins; every
    other entry is noted with why it is not used."""
    if not folder.is_dir():
        raise UserError(f"input folder not found: {folder}")
    builder = _Builder()
    for file in sorted(folder.iterdir(), key=lambda p: p.name):
        kind = path_kind(file)
        if kind == REGULAR and file.suffix.lower() not in extensions:
            kind = f"its extension {file.suffix or '(none)'} is not one of the formats read"
        if kind != REGULAR:
            builder.catalogue.warnings.append((printable(file.name), f"folder entry not used: {kind}"))
            continue
        movie_id = file.stem
        if builder.kept(movie_id) == movie_id:
            builder.reject(movie_id, f"duplicate id: {file.name} ignored (another file of that id is used)")
        else:
            builder.add(movie_id, str(file))
    return builder.catalogue


def read_media(path: Path, extensions: tuple[str, ...], download: str = "") -> Catalogue:
    """A media catalogue given as a folder of `<id>.<ext>` files or as a TSV map (see read_media_map).

    Item paths are absolute, so that workers running elsewhere (the Ray engine) find them.
    """
    path = path.absolute()
    if path.is_dir():
        return read_media_dir(path, extensions)
    return read_media_map(path, download)


def read_ids(path: Path) -> set[str]:
    """The `--ids` file: one id a line, blank lines ignored."""
    text, _ = _read_text(path)
    return {line.strip() for line in text.splitlines() if line.strip()}
