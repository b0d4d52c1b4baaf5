"""Trailer pictures: one PyAV decode feeds every requested video model.

Frames of the first video stream are decoded in presentation order and kept while
`pts × time_base` (as stored, not shifted) is at most 30 s (docs/recipes.md: Video). The
decode stops as soon as every requested model has all the frames it can use (its
window length × 5), so a 2-minute trailer costs 320 decoded frames at most.

Memory stays bounded: each kept frame goes straight through the per-frame part of
each model's recipe (scale, resize, crop, normalise: all of it works frame by frame)
and only those small prepared frames are held, never a window of full-size frames.
Cutting them into windows, padding and batching is the encoder's `preprocess`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch

from m3l.catalog import Item
from m3l.media import LoaderOptions
from m3l.media.container import Deadline, open_media

MAX_SECONDS = 30
# FFmpeg's automatic thread count follows the CPUs the process may use, and a damaged stream
# yields a different number of frames with one decoding thread than with several: a fixed
# count makes every machine decode every trailer alike.
DECODE_THREADS = 4


@dataclass(frozen=True)
class FramePlan:
    """What one model takes from the decoder.

    `prepare` turns one RGB frame, float [C, H, W] in [0, 1], into the model's frame;
    it runs on frames 0, step, 2·step, ... below `frames` (= window length × 5).
    It must be picklable: loaders run in worker processes.
    """

    name: str
    frames: int
    step: int
    prepare: Callable[[torch.Tensor], torch.Tensor]

    def wants(self, index: int) -> bool:
        return index < self.frames and index % self.step == 0


@dataclass
class DecodedVideo:
    """Prepared frames per plan name ([N, C, H, W], frame `step·i` at row i), the number of
    usable frames decoded, and what went wrong without stopping the trailer (the engine logs
    `warnings` for the item)."""

    frames: dict[str, torch.Tensor]
    count: int
    warnings: list[str] = field(default_factory=list)


def _frames_until_done(container, stream, wanted: int, warnings: list[str]):
    """Frames in presentation order up to 30 s and at most `wanted` of them.

    A packet the decoder rejects is skipped (noted; the decoder resumes at the next
    picture it can decode); a stream that cannot be read any further ends the trailer
    there (noted; the frames before it still count).
    """
    import av

    limit = Fraction(MAX_SECONDS)
    count = 0
    packets = container.demux(stream)
    deadline = Deadline()
    while count < wanted:
        deadline.check()
        try:
            packet = next(packets)
        except StopIteration:
            if stream.frames and count < stream.frames:
                warnings.append(f"stream ended after {count} of the {stream.frames} frames its header announces "
                                "(truncated or damaged file?)")
            return
        except av.FFmpegError as error:
            warnings.append(f"stream unreadable after frame {count} ({error.strerror or error}); "
                            "using the frames before it")
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as error:
            where = f"at {float(packet.pts * stream.time_base):.2f} s " if packet.pts is not None else ""
            warnings.append(f"undecodable packet {where}skipped ({error.strerror or error})")
            continue
        for frame in frames:
            if frame.pts is not None and frame.pts * stream.time_base > limit:
                return
            yield frame
            count += 1
            if count == wanted:
                return


def decode(path: Path, plans: tuple[FramePlan, ...]) -> DecodedVideo:
    """Decode once, prepare each kept frame for every plan that wants it."""
    warnings: list[str] = []
    prepared: dict[str, list[torch.Tensor]] = {plan.name: [] for plan in plans}
    count = 0
    with open_media(path) as container:
        if not container.streams.video:
            kinds = ", ".join(sorted({stream.type for stream in container.streams})) or "none"
            raise ValueError(f"no video stream in {path.name} (streams: {kinds})")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = DECODE_THREADS
        for index, frame in enumerate(_frames_until_done(container, stream, max(p.frames for p in plans), warnings)):
            users = [plan for plan in plans if plan.wants(index)]
            if users:
                # [H, W, C] to float, then a [C, H, W] view: faster than converting the permuted array
                rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).float().div_(255).permute(2, 0, 1)
                for plan in users:
                    prepared[plan.name].append(plan.prepare(rgb))
            count = index + 1
    if count == 0:
        raise ValueError("no video frame could be decoded" + (f": {warnings[-1]}" if warnings else ""))
    return DecodedVideo({name: torch.stack(frames) for name, frames in prepared.items()}, count, warnings)


@dataclass(frozen=True)
class VideoLoader:
    plans: tuple[FramePlan, ...]

    def __call__(self, item: Item) -> DecodedVideo:
        return decode(Path(item.source), self.plans)


def loader_for(encoders: list, options: LoaderOptions = LoaderOptions()) -> VideoLoader:
    return VideoLoader(tuple(encoder.frame_plan for encoder in encoders))
