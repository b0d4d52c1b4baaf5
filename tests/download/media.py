"""Test trailers made on the fly with the FFmpeg binary of imageio-ffmpeg (the download venv has no PyAV)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg

from tests.web import WebServer


def write_trailer(path: Path, seconds: float, size: str = "64x48", start: float = 0.0, audio_delay: float = 0.0,
                  fps: int = 25, preset: str = "medium") -> Path:
    """H.264 (B-frames on) and AAC for `seconds`; the first timestamp at `start`, the audio `audio_delay`
    s after the video; x264's `preset` trades size for speed. The index (moov) goes at the file's end,
    as FFmpeg writes it by default, so a reader that wants only the start must seek with Range requests."""
    video = f"testsrc2=size={size}:rate={fps}:duration={seconds}"
    audio = f"sine=frequency=440:beep_factor=4:sample_rate=44100:duration={seconds}"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", video,
               "-itsoffset", str(audio_delay), "-f", "lavfi", "-i", audio,
               "-c:v", "libx264", "-preset", preset, "-x264-params", "threads=1", "-pix_fmt", "yuv420p",
               "-c:a", "aac", "-output_ts_offset", str(start), str(path)]
    subprocess.run(command, check=True, timeout=600)
    return path


def serve(web: WebServer, path: str, trailer: Path | None = None) -> str:
    """The URL of `trailer` served as video/mp4 at `path` (nothing there: 404)."""
    if trailer is not None:
        web.files[path] = trailer.read_bytes()
        web.types[path] = "video/mp4"
    return web.url + path


def serve_dash(web: WebServer, folder: str, trailer: Path) -> str:
    """The URL of a DASH manifest offering `trailer`'s video and audio as two files, timestamps as stored
    (the representations 137 and 140, as YouTube names them): yt-dlp downloads both and merges them,
    as it does YouTube's."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    for stream, name in (("v", "video.mp4"), ("a", "audio.m4a")):
        subprocess.run([ffmpeg, "-v", "error", "-y", "-copyts", "-i", str(trailer), "-map", f"0:{stream}", "-c", "copy",
                        str(trailer.with_name(f"{trailer.stem}.{name}"))], check=True, timeout=120)
        serve(web, f"{folder}/{name}", trailer.with_name(f"{trailer.stem}.{name}"))
    web.files[f"{folder}/manifest.mpd"] = f"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT40S"
     profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
  <Period>
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <Representation id="137" bandwidth="200000" width="64" height="48" codecs="avc1.64000a">
        <BaseURL>video.mp4</BaseURL>
      </Representation>
    </AdaptationSet>
    <AdaptationSet contentType="audio" mimeType="audio/mp4" lang="en">
      <Representation id="140" bandwidth="64000" codecs="mp4a.40.2" audioSamplingRate="44100">
        <BaseURL>audio.m4a</BaseURL>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
""".encode()
    web.types[f"{folder}/manifest.mpd"] = "application/dash+xml"
    return f"{web.url}{folder}/manifest.mpd"
