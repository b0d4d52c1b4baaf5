"""Trailer soundtracks: the first 30 s of the first audio stream, mono, 16 kHz, decoded once.

Per docs/recipes.md (Audio): PyAV decodes the first audio stream and FFmpeg's own
resampler (`av.AudioResampler(format="fltp", layout="mono", rate=16000)`) down-mixes
and resamples it frame by frame, each frame's timestamp cleared; the frames are
concatenated until 480,000 samples are collected and cut there. Demuxing stops as
soon as enough is decoded, so the rest of the file is never read. The one waveform
feeds every audio model; each model's `preprocess` makes its own features from it.
An encoder that wants another rate says so with its `sample_rate` (declared, with
`min_partial_samples`, on m3l.models.audio.AudioEncoder): the same decoded frames then also
go through a resampler to that rate (first 30 s of it too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    """A mono float32 waveform at 16 kHz, the same soundtrack at the other rates encoders asked for,
    and caveats worth a log line (the item is still used)."""

    waveform: np.ndarray
    warnings: tuple[str, ...] = ()
    resampled: Mapping[int, np.ndarray] = field(default_factory=dict)

    def at(self, rate: int) -> np.ndarray:
        """The waveform at `rate` Hz (16 kHz, or one of the rates the loader was asked for)."""
        return self.waveform if rate == SAMPLE_RATE else self.resampled[rate]


def _decode(container, wanted: dict[int, int]) -> tuple[dict[int, list[np.ndarray]], dict[int, int], Exception | None]:
    """Per rate (→ samples wanted): resampled chunks of the first audio stream, their length, and the
    error that stopped decoding early."""
    import av

    stream = container.streams.audio[0]
    resamplers = {rate: av.AudioResampler(format="fltp", layout="mono", rate=rate) for rate in wanted}
    chunks: dict[int, list[np.ndarray]] = {rate: [] for rate in wanted}
    collected = dict.fromkeys(wanted, 0)
    deadline = Deadline()
    try:
        for packet in container.demux(stream):
            deadline.check()
            for frame in packet.decode():
                frame.pts = None
                for rate, resampler in resamplers.items():
                    for resampled in resampler.resample(frame):
                        chunks[rate].append(resampled.to_ndarray()[0])
                        collected[rate] += resampled.samples
            if all(collected[rate] >= samples for rate, samples in wanted.items()):
                break
    except av.FFmpegError as error:
        return chunks, collected, error
    return chunks, collected, None


def decode_soundtrack(path: Path | str, max_samples: int = MAX_SAMPLES, min_partial_samples: int = 1,
                      rates: tuple[int, ...] = ()) -> Soundtrack:
    """The trailer's first `max_samples` samples of mono 16 kHz audio (fewer if it is shorter), and
    the same span of it at each of `rates`.

    A stream that breaks part-way is kept, with a warning, when at least `min_partial_samples` decoded.
    """
    path = Path(path)
    with open_media(path) as container:
        if not container.streams.audio:
            kinds = ", ".join(sorted({stream.type for stream in container.streams})) or "none"
            raise ValueError(f"no audio stream in {path.name} (streams: {kinds})")
        wanted = {rate: max_samples * rate // SAMPLE_RATE for rate in {SAMPLE_RATE, *rates}}
        chunks, decoded, error = _decode(container, wanted)
    collected = decoded[SAMPLE_RATE]
    seconds = collected / SAMPLE_RATE
    warnings = []
    if error is not None:
        reason = f"{type(error).__name__}: {error.strerror or error}"
        if collected < min_partial_samples:
            raise ValueError(f"audio failed to decode after {seconds:.2f} s ({reason})")
        warnings.append(f"audio failed to decode after {seconds:.2f} s, the decoded part is used ({reason})")
    if collected == 0:
        raise ValueError(f"the audio stream of {path.name} holds no samples")
    waveform = np.concatenate(chunks[SAMPLE_RATE])[:max_samples]
    if collected < SHORT_SAMPLES:
        warnings.append(f"audio is only {seconds:.2f} s long")
    if not waveform.any():
        warnings.append("audio is silent (all samples are zero)")
    resampled = {rate: np.concatenate(chunks[rate] or [np.zeros(0, np.float32)])[:samples]
                 for rate, samples in wanted.items() if rate != SAMPLE_RATE}
    return Soundtrack(waveform, tuple(warnings), resampled)


@dataclass(frozen=True)
class SoundtrackLoader:
    """The picklable item → Soundtrack function run in loader workers."""

    max_samples: int = MAX_SAMPLES
    min_partial_samples: int = 1
    rates: tuple[int, ...] = ()

    def __call__(self, item: Item) -> Soundtrack:
        return decode_soundtrack(item.source, self.max_samples, self.min_partial_samples, self.rates)


def loader_for(encoders: list, options: LoaderOptions = LoaderOptions()) -> SoundtrackLoader:
    """Decodes at every encoder's `sample_rate`, and keeps the decoded part of a broken stream when it is
    long enough for every encoder: each one's `min_partial_samples` (VGGish: one complete example)."""
    rates = tuple(sorted({e.sample_rate for e in encoders} - {SAMPLE_RATE}))
    return SoundtrackLoader(min_partial_samples=max((e.min_partial_samples for e in encoders), default=1),
                            rates=rates)
