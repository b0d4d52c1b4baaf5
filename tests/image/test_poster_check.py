"""check_poster (download_posters.py's check, a JPEG decoded at 1/8 scale) rejects exactly what read_poster rejects."""

from __future__ import annotations

import io
import random
import re

import pytest

from m3l.media.image import check_poster, read_poster
from tests.image.media import bad_posters, odd_posters, photo, write_photos


def rejection(read, path) -> str | None:
    try:
        read(path)
    except (OSError, ValueError) as error:
        return str(error)
    return None


def test_every_bad_poster_is_rejected_with_its_reason(tmp_path):
    for path, phrase in bad_posters(tmp_path).values():
        with pytest.raises(ValueError, match=re.escape(phrase)):
            check_poster(path)


def test_every_usable_poster_passes(tmp_path):
    paths = [*write_photos(tmp_path).values(), *(path for path, _ in odd_posters(tmp_path).values())]
    for path in paths:
        check_poster(path)


def jpegs() -> dict[str, bytes]:
    image = photo()
    encodings = {"baseline": {}, "4:4:4": {"subsampling": 0}, "progressive": {"progressive": True},
                 "restart markers": {"restart_marker_rows": 1}, "greyscale": {}}
    written = {}
    for name, options in encodings.items():
        buffer = io.BytesIO()
        (image.convert("L") if name == "greyscale" else image).save(buffer, "JPEG", quality=90, **options)
        written[name] = buffer.getvalue()
    return written


def damaged(data: bytes, rng: random.Random) -> list[bytes]:
    """`data` cut, with bits flipped, bytes taken out or zeroed, or a marker put inside its scan data."""
    scan = data.index(b"\xff\xda") + 2 + int.from_bytes(data[data.index(b"\xff\xda") + 2:][:2], "big")
    positions = [rng.randrange(scan, len(data) - 2) for _ in range(8)]
    cuts = [data[:scan + (len(data) - scan) * n // 8] for n in range(8)] + [data[:-1], data[:-3]]
    flips = [data[:at] + bytes([data[at] ^ 1 << rng.randrange(8)]) + data[at + 1:] for at in positions]
    holes = [data[:at] + data[at + 300:] for at in positions[:4]]
    zeros = [data[:at] + bytes(300) + data[at + 300:] for at in positions[4:]]
    markers = [data[:at] + marker + data[at:] for at, marker in zip(positions, (b"\xff\xd9", b"\xff\xd0", b"\xff\xd8"))]
    return cuts + flips + holes + zeros + markers


def test_damaged_jpegs_are_rejected_exactly_when_the_full_decode_rejects_them(tmp_path):
    rng = random.Random(0)
    verdicts = []
    for name, data in jpegs().items():
        for number, broken in enumerate(damaged(data, rng)):
            path = tmp_path / f"{name}-{number}.jpg"
            path.write_bytes(broken)
            full, cheap = rejection(read_poster, path), rejection(check_poster, path)
            assert (full is None) == (cheap is None), (name, number, full, cheap)
            verdicts.append(full is None)
    assert any(verdicts) and not all(verdicts)  # both kinds of damage are among the cases
