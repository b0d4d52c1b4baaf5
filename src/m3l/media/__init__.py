"""Media decoding: what each modality's loader workers do to an item before any model sees it.

Each modality's module makes its loader with `loader_for(encoders, options)`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from m3l.catalog import REGULAR, path_kind

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default decompression-bomb threshold (Image.MAX_IMAGE_PIXELS)


class NoSharedMemory(Exception):
    """A loader worker found no room in /dev/shm for an item's data: the main process prepares it instead."""


@dataclass(frozen=True)
class LoaderOptions:
    """The command-line options loaders take (only the image loader has any)."""

    exif_rotate: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def of(cls, args: argparse.Namespace) -> LoaderOptions:
        """The options a parsed command line gives; those its modality lacks keep their defaults."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def require_regular_file(path: Path, what: str) -> None:
    """Return when `path` (links followed) is a non-empty regular file; otherwise raise saying what it is.

    Nothing else is ever opened: reading a FIFO or a device can block forever or never end.
    """
    kind = path_kind(path)
    if kind == "not found":
        raise FileNotFoundError(f"{what} not found: {path}")
    if kind != REGULAR:
        raise ValueError(f"{what} is {kind}, not a regular file: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} is empty (0 bytes): {path}")
