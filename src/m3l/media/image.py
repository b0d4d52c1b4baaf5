"""Poster decoding: one image file → an RGB PIL image, as every image recipe starts.

Runs in loader workers. Unreadable files raise OSError/ValueError with the reason the
log shows; odd but usable files (alpha, palette, greyscale, CMYK, 16-bit, animated,
EXIF-rotated) are decoded the way the published vectors were (PIL's `convert("RGB")` of the
first frame, orientation tag ignored) and carry a warning for the log.

PIL is imported inside the functions: this module is read by the CLI in every venv.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m3l.catalog import Item
from m3l.media import DEFAULT_MAX_PIXELS, LoaderOptions, require_regular_file

_EXIF_ORIENTATION = 0x0112
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


def _open(path: Path, max_pixels: int) -> Any:
    """The image, header read, pixels not yet decoded, checked against the decompression-bomb limit."""
    from PIL import Image

    require_regular_file(path, "file")
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # checked below, with a clearer message
    try:
        image = Image.open(path)
    except Image.UnidentifiedImageError:
        raise ValueError(f"not an image PIL can read: {path.name}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if image.width * image.height > max_pixels:
        image.close()
        raise ValueError(f"{image.width}x{image.height} = {image.width * image.height:,} pixels, over the "
                         f"decompression-bomb limit of {max_pixels:,} (--max-pixels raises it)")
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
    from PIL import ImageOps

    notes = []
    with _open(path, max_pixels) as image:
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            notes.append(f"animated image ({frames} frames): the first frame is used")
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
