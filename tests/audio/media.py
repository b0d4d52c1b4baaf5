"""Test soundtracks made on the fly with PyAV's encoders (no binary files in the repository)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# suffix → (encoder, container format or None for the suffix's default)
CODECS = {
    ".mkv": ("libopus", "matroska"),
    ".webm": ("vorbis", "webm"),  # FFmpeg's own (experimental) Vorbis encoder
    ".mp3": ("libmp3lame", None),
    ".wav": ("pcm_s16le", None),
    ".flac": ("flac", None),
    ".m4a": ("aac", "mp4"),
}
CHANNELS = {"mono": 1, "stereo": 2, "5.1": 6}


def music(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """(channels, samples) float32: chords of sines with a slow tremolo and a little noise, different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tracks = []
    for channel in range(channels):
        pitches = rng.uniform(110, min(3000, rate / 2.5), size=3)
        tone = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in pitches) / 3
        tremolo = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.3, 2.0) * t)
        tracks.append(0.5 * tone * tremolo + 0.05 * rng.standard_normal(len(t)))
    return np.asarray(tracks, np.float32)


def write_audio(path: Path, seconds: float, rate: int = 44100, layout: str = "stereo", silent: bool = False,
                seed: int = 0) -> Path:
    """An audio file whose codec and container follow `path`'s suffix (see CODECS)."""
    import av

    codec, container_format = CODECS[path.suffix]
    samples = music(seconds, rate, CHANNELS[layout], seed)
    if silent:
        samples[:] = 0
    with av.open(str(path), "w", format=container_format) as output:
        stream = output.add_stream(codec, rate=rate, layout=layout, options={"strict": "experimental"})
        for start in range(0, samples.shape[1], 1000):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1000]),
                                               format="fltp", layout=layout)
            frame.rate = rate
            frame.pts = start
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def write_broken(path: Path, seconds: float, broken_from: float) -> Path:
    """An AAC .m4a whose audio data turns to noise bytes from `broken_from` (a fraction of the file) on."""
    write_audio(path, seconds)
    data = bytearray(path.read_bytes())
    start = int(len(data) * broken_from)
    data[start:start + len(data) // 4] = np.random.default_rng(0).integers(0, 256, len(data) // 4, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path
