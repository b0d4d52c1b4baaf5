"""Opening a trailer with PyAV, with one clear message for each way the file itself can be unusable.

A trailer is read from its own file and nothing else: FFmpeg may only use its `file`
protocol, on that path, through demuxers of self-contained formats. Playlists and
scripts (concat, HLS, DASH, image sequences, SDP, ...) name other files or URLs, so
their demuxers are left out. Every blocking read gives up after `READ_TIMEOUT` s and
a whole decode after `DECODE_TIMEOUT` s, so that no trailer can hold a run forever.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path

from m3l.media import require_regular_file

READ_TIMEOUT = 60
DECODE_TIMEOUT = 300
# FFmpeg demuxers of self-contained audio and video files (a name matches any of a demuxer's names).
FORMATS = ("mov", "matroska", "avi", "mp3", "aac", "wav", "w64", "flac", "ogg", "mpegts", "mpeg", "flv", "asf",
           "m4v", "h264", "hevc", "ac3", "eac3", "dts", "truehd", "aiff", "caf", "wv", "ape", "tta", "mpc", "amr",
           "mxf", "nut", "ivf", "obu", "yuv4mpegpipe")
_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": ",".join(FORMATS)}


def open_media(path: Path):
    """The PyAV input container of `path`; FileNotFoundError or ValueError with a one-line reason otherwise."""
    import av

    require_regular_file(path, "trailer file")
    try:
        return av.open(f"file:{path.absolute()}", metadata_errors="ignore", container_options=_OPTIONS,
                       timeout=READ_TIMEOUT)
    except av.FFmpegError as error:
        if error.errno == errno.EINVAL:
            raise ValueError("not a self-contained media file (playlists, concat scripts and other formats that "
                             f"name other files are not read): {path}") from None
        raise ValueError(f"not a readable media file ({error.strerror or error}): {path}") from None


class Deadline:
    """Raises TimeoutError once a decode has taken longer than `DECODE_TIMEOUT` seconds."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = DECODE_TIMEOUT if seconds is None else seconds
        self.end = time.monotonic() + self.seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise TimeoutError(f"decoding took longer than {self.seconds:g} s; the trailer is skipped")
