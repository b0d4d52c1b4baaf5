"""Opening a trailer with PyAV, with one clear message for each way the file itself can be unusable."""

from __future__ import annotations

from pathlib import Path


def open_media(path: Path):
    """The PyAV input container of `path`; FileNotFoundError or ValueError with a one-line reason otherwise."""
    import av

    if not path.is_file():
        raise FileNotFoundError(f"trailer file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"trailer file is empty (0 bytes): {path}")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as error:
        raise ValueError(f"not a readable media file ({error.strerror or error}): {path}") from None
