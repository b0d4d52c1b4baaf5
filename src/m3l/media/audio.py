"""Trailer soundtracks: the first 30 s of the first audio stream, mono, 16 kHz, decoded once.

Per docs/recipes.md (Audio): PyAV decodes the first audio stream and FFmpeg's own
resampler (`av.AudioResampler(format="fltp", layout="mono", rate=16000)`) down-mixes
and resamples it frame by frame, each frame's timestamp cleared; the frames are
concatenated until 480,000 samples are collected and cut there. Demuxing stops as
soon as enough is decoded, so the rest of the file is never read. The one waveform
feeds every audio model; each model's `preprocess` makes its own features from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m3l.catalog import Item
from m3l.media import LoaderOptions
from m3l.media.container import Deadline, open_media

SAMPLE_RATE = 16_000
MAX_SAMPLES = 30 * SAMPLE_RATE
SHORT_SAMPLES = SAMPLE_RATE  # under one second: kept, with a warning in the logs


@dataclass(frozen=True)
class Soundtrack:
    """A mono float32 waveform at 16 kHz, and caveats worth a log line (the item is still used)."""

    waveform: np.ndarray
    warnings: tuple[str, ...] = ()


def _decode(container, max_samples: int) -> tuple[list[np.ndarray], int, Exception | None]:
    """Resampled chunks of the first audio stream, their length, and the error that stopped decoding early."""
    import av

    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=SAMPLE_RATE)
    chunks, collected = [], 0
    deadline = Deadline()
    try:
        for packet in container.demux(stream):
            deadline.check()
            for frame in packet.decode():
                frame.pts = None
                for resampled in resampler.resample(frame):
                    chunks.append(resampled.to_ndarray()[0])
                    collected += resampled.samples
            if collected >= max_samples:
                break
    except av.FFmpegError as error:
        return chunks, collected, error
    return chunks, collected, None


def decode_soundtrack(path: Path | str, max_samples: int = MAX_SAMPLES, min_partial_samples: int = 1) -> Soundtrack:
    """The trailer's first `max_samples` samples of mono 16 kHz audio (fewer if it is shorter).

    A stream that breaks part-way is kept, with a warning, when at least `min_partial_samples` decoded.
    """
    path = Path(path)
    with open_media(path) as container:
        if not container.streams.audio:
            kinds = ", ".join(sorted({stream.type for stream in container.streams})) or "none"
            raise ValueError(f"no audio stream in {path.name} (streams: {kinds})")
        chunks, collected, error = _decode(container, max_samples)
    seconds = collected / SAMPLE_RATE
    warnings = []
    if error is not None:
        reason = f"{type(error).__name__}: {error.strerror or error}"
        if collected < min_partial_samples:
            raise ValueError(f"audio failed to decode after {seconds:.2f} s ({reason})")
        warnings.append(f"audio failed to decode after {seconds:.2f} s, the decoded part is used ({reason})")
    if collected == 0:
        raise ValueError(f"the audio stream of {path.name} holds no samples")
    waveform = np.concatenate(chunks)[:max_samples]
    if collected < SHORT_SAMPLES:
        warnings.append(f"audio is only {seconds:.2f} s long")
    if not waveform.any():
        warnings.append("audio is silent (all samples are zero)")
    return Soundtrack(waveform, tuple(warnings))


@dataclass(frozen=True)
class SoundtrackLoader:
    """The picklable item → Soundtrack function run in loader workers."""

    max_samples: int = MAX_SAMPLES
    min_partial_samples: int = 1

    def __call__(self, item: Item) -> Soundtrack:
        return decode_soundtrack(item.source, self.max_samples, self.min_partial_samples)


def loader_for(encoders: list, options: LoaderOptions = LoaderOptions()) -> SoundtrackLoader:
    """Keeps the decoded part of a broken stream when it is long enough for every encoder: each one's
    `min_partial_samples`, where it has one (VGGish: one complete example)."""
    return SoundtrackLoader(min_partial_samples=max((getattr(e, "min_partial_samples", 1) for e in encoders), default=1))
