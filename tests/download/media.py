"""Test trailers made on the fly with the FFmpeg binary of imageio-ffmpeg (the download venv has no PyAV)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg

from tests.web import WebServer


def write_trailer(path: Path, seconds: float, size: str = "64x48", start: float = 0.0, audio_delay: float = 0.0,
                  fps: int = 25, faststart: bool = False) -> Path:
    """H.264 (B-frames on) and AAC for `seconds`; the first timestamp at `start`, the audio `audio_delay`
    s after the video. The index (moov) goes at the file's end unless `faststart`, so a reader that
    wants only the start must seek with Range requests."""
    video = f"testsrc2=size={size}:rate={fps}:duration={seconds}"
    audio = f"sine=frequency=440:beep_factor=4:sample_rate=44100:duration={seconds}"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", video,
               "-itsoffset", str(audio_delay), "-f", "lavfi", "-i", audio,
               "-c:v", "libx264", "-x264-params", "threads=1", "-pix_fmt", "yuv420p", "-c:a", "aac",
               "-output_ts_offset", str(start), *(["-movflags", "+faststart"] if faststart else []), str(path)]
    subprocess.run(command, check=True, timeout=120)
    return path


def serve(web: WebServer, path: str, trailer: Path | None = None) -> str:
    """The URL of `trailer` served as video/mp4 at `path` (nothing there: 404)."""
    if trailer is not None:
        web.files[path] = trailer.read_bytes()
        web.types[path] = "video/mp4"
    return web.url + path
