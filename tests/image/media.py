"""Posters for the tests, made with PIL from scikit-image's sample photos (nothing binary is committed).

`odd_posters` writes one file per odd-but-usable case, `bad_posters` the unusable ones; each
returns {movie id: (file, a phrase its log line must contain)}.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.testlib import skimage_photo

PHOTOS = {"astronaut": "astronaut.png", "chelsea": "chelsea.png", "rocket": "rocket.jpg"}


def photo(name: str = "chelsea.png") -> Image.Image:
    with Image.open(skimage_photo(name)) as image:
        return image.convert("RGB")


def write_photos(folder: Path) -> dict[str, Path]:
    """The real photos as posters, each in its own format."""
    paths = {}
    for movie_id, name in PHOTOS.items():
        paths[movie_id] = folder / f"{movie_id}{Path(name).suffix}"
        photo(name).save(paths[movie_id])
    return paths


def _with_alpha(image: Image.Image) -> Image.Image:
    ramp = np.linspace(0, 255, image.width, dtype=np.uint8)
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(ramp, (image.height, 1))))
    return rgba


def _frames(image: Image.Image) -> list[Image.Image]:
    return [image, image.rotate(90), image.transpose(Image.FLIP_LEFT_RIGHT)]


def odd_posters(folder: Path) -> dict[str, tuple[Path, str]]:
    base = photo()
    grey16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    cases = {
        "rgba": ("png", _with_alpha(base), {}, "alpha is dropped"),
        "la": ("png", _with_alpha(base).convert("LA"), {}, "mode LA has transparency"),
        "palette": ("png", base.quantize(64), {}, "palette image (mode P)"),
        "palette_alpha": ("png", base.quantize(64), {"transparency": 0}, "mode P has transparency"),
        "grey": ("png", Image.open(skimage_photo("camera.png")), {}, "greyscale image (mode L)"),
        "bilevel": ("bmp", base.convert("1"), {}, "black-and-white image (mode 1)"),
        "cmyk": ("jpg", base.convert("CMYK"), {"quality": 95}, "CMYK image (mode CMYK)"),
        "grey16": ("png", Image.fromarray(grey16), {}, "mode I;16 (16-bit)"),
        "tiff": ("tiff", base, {}, None),
        "gif": ("gif", base.quantize(64), {"save_all": True, "append_images": [f.quantize(64) for f in _frames(base)[1:]]},
                "animated image (3 frames)"),
        "webp": ("webp", base, {"save_all": True, "append_images": _frames(base)[1:], "lossless": True},
                 "animated image (3 frames)"),
        "exif": ("jpg", base, {"exif": _orientation_exif(6)}, "EXIF orientation 6 ignored"),
    }
    written = {}
    for movie_id, (ext, image, options, phrase) in cases.items():
        path = folder / f"{movie_id}.{ext}"
        image.save(path, **options)
        written[movie_id] = (path, phrase)
    return written


def _orientation_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _png_claiming_size(path: Path, width: int, height: int) -> None:
    """A real 1x1 PNG whose header claims `width` x `height`: a decompression bomb PIL must refuse."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:33] = header + struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))


def _icon_holding(path: Path, png: Path) -> None:
    """An ICO whose directory lists one 256x256 icon, stored as the PNG at `png` (whatever its size)."""
    data = png.read_bytes()
    path.write_bytes(struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(data), 22) + data)


def _icns_holding(path: Path, png: Path) -> None:
    """An ICNS whose one 1024x1024 icon (type ic10) is the PNG at `png` (whatever its size)."""
    data = png.read_bytes()
    path.write_bytes(b"icns" + struct.pack(">I", 16 + len(data)) + b"ic10" + struct.pack(">I", 8 + len(data)) + data)


def bad_posters(folder: Path) -> dict[str, tuple[Path, str]]:
    truncated = folder / "truncated.jpg"
    photo().save(truncated, quality=90)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("movie_id\tplot\n1\tnot a picture\n")
    _png_claiming_size(folder / "bomb.png", 20_000, 20_000)
    _icon_holding(folder / "iconbomb.ico", folder / "bomb.png")
    _png_claiming_size(folder / "big.png", 12_000, 12_000)  # over --max-pixels, under twice PIL's own limit
    _icns_holding(folder / "icnsbomb.icns", folder / "big.png")
    (folder / "big.png").unlink()
    return {
        "truncated": (truncated, "truncated or corrupt JPEG file"),
        "empty": (folder / "empty.png", "file is empty (0 bytes)"),
        "text": (folder / "text.jpg", "not an image PIL can read"),
        "bomb": (folder / "bomb.png", "20000x20000 = 400,000,000 pixels, over the decompression-bomb limit"),
        "iconbomb": (folder / "iconbomb.ico", "20000x20000 = 400,000,000 pixels (an icon in the ICO file), over the "
                                              "decompression-bomb limit"),
        "icnsbomb": (folder / "icnsbomb.icns", "144,000,000 pixels (a picture inside the ICNS file), over the "
                                               "decompression-bomb limit of 89,478,485"),
    }
