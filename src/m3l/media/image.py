"""Poster decoding: one image file → an RGB PIL image, as every image recipe starts.

Runs in loader workers. Unreadable files raise OSError/ValueError with the reason the
log shows; odd but usable files (alpha, palette, greyscale, CMYK, 16-bit, animated,
EXIF-rotated) are decoded the way the published vectors were (PIL's `convert("RGB")` of the
first frame, orientation tag ignored) and carry a warning for the log.

PIL is imported inside the functions: this module is read by the CLI in every venv.
"""

from __future__ import annotations

import argparse
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m3l.catalog import Item
from m3l.media import DEFAULT_MAX_PIXELS, LoaderOptions, require_regular_file

_EXIF_ORIENTATION = 0x0112
_ICO_MAGIC = b"\x00\x00\x01\x00"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exif-rotate", action="store_true",
                        help="turn JPEGs upright by their EXIF orientation tag (the published vectors did not)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images with more pixels than this, as possible decompression bombs "
                             f"(default: {DEFAULT_MAX_PIXELS:,}, PIL's own limit)")


@dataclass
class Poster:
    """A decoded poster in RGB, and caveats worth a log line (the poster is still used)."""

    image: Any  # PIL.Image.Image
    warnings: tuple[str, ...] = ()


def _check_pixels(width: int, height: int, max_pixels: int, what: str = "") -> None:
    if width * height > max_pixels:
        raise ValueError(f"{width}x{height} = {width * height:,} pixels{what}, over the decompression-bomb limit of "
                         f"{max_pixels:,} (--max-pixels raises it)")


def _check_icons(path: Path, max_pixels: int) -> None:
    """Pillow decodes an ICO's largest icon inside Image.open, at the size its embedded PNG or bitmap
    declares, not the directory's (at most 256x256): every icon's own size is checked first."""
    from PIL import BmpImagePlugin, IcoImagePlugin, PngImagePlugin

    with path.open("rb") as file:
        if file.read(4) != _ICO_MAGIC:
            return
        file.seek(0)
        try:
            icons = IcoImagePlugin.IcoFile(file).entry
        except (OSError, SyntaxError, ValueError, struct.error):  # Image.open says what is wrong
            return
        for icon in icons:
            file.seek(icon.offset)
            png = file.read(len(_PNG_MAGIC)) == _PNG_MAGIC
            file.seek(icon.offset)
            try:
                width, height = (PngImagePlugin.PngImageFile if png else BmpImagePlugin.DibImageFile)(file).size
            except (OSError, SyntaxError, ValueError, struct.error):
                continue
            _check_pixels(width, height if png else height // 2, max_pixels, " (an icon in the ICO file)")


@contextmanager
def _pil_pixel_limit(max_pixels: int, image_format: str) -> Iterator[None]:
    """PIL's own checks of the pictures a file holds (an ICNS icon, a GIF frame, a TIFF tile), made as
    they are decoded, refuse what is over `max_pixels` too."""
    from PIL import Image

    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels / 2  # PIL refuses over twice its limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # over the limit itself: a warning only
            yield
    except Image.DecompressionBombError as error:
        pixels = re.search(r"\((\d+) pixels\)", str(error))  # PIL's message: "Image size (N pixels) exceeds ..."
        amount = f"{int(pixels[1]):,}" if pixels else "too many"
        raise ValueError(f"{amount} pixels (a picture inside the {image_format} file), over the decompression-bomb "
                         f"limit of {max_pixels:,} (--max-pixels raises it)") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _open(path: Path, max_pixels: int) -> Any:
    """The image, header read, pixels not yet decoded, checked against the decompression-bomb limit."""
    from PIL import Image

    require_regular_file(path, "file")
    _check_icons(path, max_pixels)
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # checked below, with a clearer message
    try:
        image = Image.open(path)
    except Image.UnidentifiedImageError:
        raise ValueError(f"not an image PIL can read: {path.name}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    try:
        _check_pixels(image.width, image.height, max_pixels)
    except ValueError:
        image.close()
        raise
    return image


def mode_warning(image: Any) -> str | None:
    """What converting `image` to RGB changes, or None for an RGB image."""
    mode = image.mode
    if mode == "RGB":
        return None
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        return f"mode {mode} has transparency: the alpha is dropped by the conversion to RGB"
    if mode in _HIGH_DEPTH_MODES:
        return f"mode {mode} ({'16' if ';16' in mode else '32'}-bit) converted to 8-bit RGB by PIL's rules"
    kind = {"P": "palette", "L": "greyscale", "1": "black-and-white", "CMYK": "CMYK"}.get(mode, mode)
    return f"{kind} image (mode {mode}) converted to RGB"


def _orientation(image: Any) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is no orientation
        return 1


def read_poster(path: Path, exif_rotate: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> Poster:
    """The poster at `path` in RGB: first frame, converted by PIL, EXIF orientation applied only if asked."""
    return _decode(path, exif_rotate, max_pixels)


def check_poster(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raise what `read_poster(path, max_pixels=max_pixels)` raises, at a fraction of its cost for a JPEG.

    The same opening and bomb checks; a JPEG is then decoded at 1/8 scale (PIL's `draft`): libjpeg still
    entropy-decodes every coefficient of every scan, so a truncated or corrupt file fails as in the full
    decode, and only the inverse DCT and colour conversion shrink.
    """
    _decode(path, False, max_pixels, reduced=True)


def _decode(path: Path, exif_rotate: bool, max_pixels: int, reduced: bool = False) -> Poster:
    from PIL import ImageOps

    notes = []
    with _open(path, max_pixels) as image, _pil_pixel_limit(max_pixels, image.format):
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            notes.append(f"animated image ({frames} frames): the first frame is used")
        if reduced and image.format == "JPEG":
            image.draft(image.mode, (1, 1))  # the smallest DCT scale libjpeg offers, 1/8
        try:
            image.load()
        except (OSError, SyntaxError) as error:  # PIL reports some corrupt headers as SyntaxError
            raise ValueError(f"truncated or corrupt {image.format} file: {error}") from None
        if note := mode_warning(image):
            notes.append(note)
        orientation = _orientation(image)
        if orientation != 1:
            if exif_rotate:
                image = ImageOps.exif_transpose(image)
                notes.append(f"EXIF orientation {orientation} applied (--exif-rotate)")
            else:
                notes.append(f"EXIF orientation {orientation} ignored, as in the published vectors "
                             "(--exif-rotate applies it)")
        return Poster(image.convert("RGB"), tuple(notes))


@dataclass(frozen=True)
class PosterLoader:
    """The picklable item → Poster function run in loader workers."""

    exif_rotate: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __call__(self, item: Item) -> Poster:
        return read_poster(Path(item.source), self.exif_rotate, self.max_pixels)


def loader_for(encoders: list, options: LoaderOptions = LoaderOptions()) -> PosterLoader:
    return PosterLoader(options.exif_rotate, options.max_pixels)
