"""Generate the bad-input corpus every extractor runs through (nothing binary is committed).

    python tests/bad_inputs/make_corpus.py DIR

writes into DIR a plots TSV, a poster folder and a trailer map full of what real
catalogues contain: zero-byte, truncated and garbage media, media under the wrong
extension, missing files, directories where files should be, ids that must never
become paths (`../x`, `/abs`, `a/b`, NUL, very long, Windows-reserved names),
duplicate ids, blank lines, CRLF, a BOM, quoted plots with tabs and newlines, and
bytes that are not UTF-8. The good media are copies of the bundled sample catalogue.
`make_corpus` also returns what each extractor must do with every row.
"""

from __future__ import annotations

import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data"

LONG_ID = "x" * 300
# (id as written in the input, id as it appears in the log, reason fragment)
BAD_IDS = [
    ("../x", "../x", "invalid id"),
    ("/abs", "/abs", "invalid id"),
    ("a/b", "a/b", "invalid id"),
    ("a\x00b", "a\\x00b", "invalid id"),
    (LONG_ID, LONG_ID[:77] + "...", "longer than"),
    ("CON", "CON", "reserved"),
    ("nul", "nul", "reserved"),
    ("COM1", "COM1", "reserved"),
    ("a b", "a\\x20b", "invalid id"),
    ("..", "..", "invalid id"),
    ("caf\u00e9", "caf\\xe9", "invalid id"),
]


@dataclass
class Expected:
    """What one extractor must do with its catalogue's rows."""

    done: set[str] = field(default_factory=set)  # a vector
    failed: set[str] = field(default_factory=set)  # a `failed` log line, no vector
    either: set[str] = field(default_factory=set)  # a vector or a `failed` line (decoders may salvage)
    skipped: list[tuple[str | None, str]] = field(default_factory=list)  # (logged id or None, reason fragment)


@dataclass
class Corpus:
    plots: Path
    posters: Path
    trailers: Path
    expected: dict[str, Expected]  # modality → expectations; audio and video share the trailers


def _plots(folder: Path) -> tuple[Path, Expected]:
    rows = [
        b'1\tAn astronaut repairs a failing station and finds she is not alone.',
        b'2\t"A quoted plot with a\ttab, a ""quote"" and a\nnewline inside."',
        b'',
        b'   ',
        b'3\tA plot with a byte that is not UTF-8: \xff, decoded with replacement.',
        b'1\tA duplicate of id 1: the first row is kept.',
        b'4\t',
        b'5',
        b'\tA plot without an id.',
        b'-ok_id\tIds may hold letters, digits, underscores and dashes.',
        *(movie_id.encode() + b"\tA plot under an id that must never become a path." for movie_id, _, _ in BAD_IDS),
    ]
    path = folder / "plots.tsv"
    path.write_bytes(b"\xef\xbb\xbfmovie_id\tplot\r\n" + b"\r\n".join(rows) + b"\r\n")
    expected = Expected(done={"1", "2", "3", "-ok_id"},
                        skipped=[("1", "duplicate"), ("4", "empty or missing plot"), ("5", "empty or missing plot"),
                                 (None, "missing movie_id"), *((logged, why) for _, logged, why in BAD_IDS)])
    return path, expected


def _posters(folder: Path, rng: random.Random) -> tuple[Path, Expected]:
    posters = folder / "posters"
    posters.mkdir()
    jpeg = (DATA / "poster" / "1.jpg").read_bytes()
    png = (DATA / "poster" / "3.png").read_bytes()
    files = {
        "1.jpg": jpeg, "1.png": png,  # two files of one id: the first by name wins
        "2.png": png,
        "3.jpg": png,  # a PNG under a .jpg name: decoders read the content
        "4.JPEG": jpeg,
        "10.jpg": b"",
        "11.jpg": jpeg[: len(jpeg) // 3],
        "12.png": rng.randbytes(5000),
        "13.jpg": b"This is a text file, not a poster.\n",
        "notes.txt": b"not an image extension: not in the catalogue\n",
        **{f"{movie_id}.jpg": jpeg for movie_id in ("CON", "a b", "x" * 100, "caf\u00e9")},
    }
    for name, data in files.items():
        (posters / name).write_bytes(data)
    (posters / "14.jpg").mkdir()  # a folder with an image name is not a poster
    expected = Expected(done={"1", "2", "3", "4"}, failed={"10", "12", "13"}, either={"11"},
                        skipped=[("1", "duplicate"), ("CON", "reserved"), ("a\\x20b", "invalid id"),
                                 ("x" * 77 + "...", "longer than"), ("caf\\xe9", "invalid id")])
    return posters, expected


def _trailers(folder: Path, rng: random.Random) -> tuple[Path, Expected]:
    media = folder / "trailers"
    media.mkdir()
    shutil.copy(DATA / "trailers" / "1.mp4", media / "1.mp4")
    shutil.copy(DATA / "trailers" / "2.mp4", folder / "elsewhere.mp4")
    full = (DATA / "trailers" / "3.mp4").read_bytes()
    (media / "empty.mp4").write_bytes(b"")
    (media / "truncated.mp4").write_bytes(full[: len(full) // 2])
    (media / "garbage.mp4").write_bytes(rng.randbytes(20000))
    (media / "text.mp4").write_bytes(b"This is a text file, not a trailer.\n" * 100)
    rows = [
        "movie_id\ttrailer_path",
        "1\ttrailers/1.mp4",
        f"2\t{folder / 'elsewhere.mp4'}",
        "",
        "10\ttrailers/empty.mp4",
        "11\ttrailers/truncated.mp4",
        "12\ttrailers/garbage.mp4",
        "13\ttrailers/text.mp4",
        "14\ttrailers/missing.mp4",
        "15\ttrailers",
        "16\t",
        "1\ttrailers/1.mp4",
        *(f"{movie_id}\ttrailers/1.mp4" for movie_id, _, _ in BAD_IDS),
    ]
    path = folder / "trailers.tsv"
    path.write_bytes("\r\n".join(rows).encode("utf-8") + b"\r\n")
    expected = Expected(done={"1", "2"}, failed={"10", "11", "12", "13", "14", "15"},
                        skipped=[("16", "without a file path"), ("1", "duplicate"),
                                 *((logged, why) for _, logged, why in BAD_IDS)])
    return path, expected


def make_corpus(folder: Path, seed: int = 0) -> Corpus:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    plots, text = _plots(folder)
    posters, image = _posters(folder, rng)
    trailers, media = _trailers(folder, rng)
    return Corpus(plots, posters, trailers, {"text": text, "image": image, "audio": media, "video": media})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(make_corpus(Path(sys.argv[1])))
