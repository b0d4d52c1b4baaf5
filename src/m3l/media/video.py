"""Trailer pictures: one PyAV decode feeds every requested video model.

Frames of the first video stream are decoded in presentation order and kept while
`pts × time_base` (as stored, not shifted) is at most 30 s (docs/recipes.md: Video). The
decode stops as soon as every requested model has all the frames it can use (its
window length × 5), so a 2-minute trailer costs 320 decoded frames at most.

The decoder does the least work a frame needs on the CPU: FFmpeg's conversion to
RGB (uint8, full size), written straight into one buffer holding the frames any
model uses, each frame once however many models use it. The recipes' resize, crop
and normalisation run later, on the encoder's device (m3l.models.video).

In a loader worker the buffer lives in shared memory, so handing it to the main
process copies nothing. Buffers are reused for later trailers once the process using
them has dropped them: fresh memory is costly to fault in (hundreds of MB per
trailer), and a decoder that kept allocating it would run at a fraction of FFmpeg's speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch
from torch.utils.data import get_worker_info

from m3l.catalog import Item
from m3l.media import LoaderOptions, NoSharedMemory
from m3l.media.container import Deadline, open_media

MAX_SECONDS = 30
# FFmpeg's automatic thread count follows the CPUs the process may use, and a damaged stream
# yields a different number of frames with one decoding thread than with several: a fixed
# count makes every machine decode every trailer alike.
DECODE_THREADS = 4
FRAME_BYTES = 1920 * 1080 * 3  # an RGB frame of the largest common trailer size


@dataclass(frozen=True)
class FramePlan:
    """What one model takes from the decoder: frames 0, step, 2·step, ... below `frames`
    (= window length × 5)."""

    name: str
    frames: int
    step: int

    def wants(self, index: int) -> bool:
        return index < self.frames and index % self.step == 0


class Frames:
    """A trailer's kept frames, uint8 RGB [N, H, W, 3]. `busy` flags a pooled buffer: 1 while a Frames
    object holding it lives in the process it was sent to (or, if it is never sent, where it was
    made), then 0: reusable."""

    def __init__(self, tensor: torch.Tensor, busy: torch.Tensor | None = None) -> None:
        self.tensor, self.busy, self.sent = tensor, busy, False

    def __reduce__(self):
        self.sent = True
        return Frames, (self.tensor, self.busy)

    def __del__(self) -> None:
        if self.busy is not None and not self.sent:
            self.busy.fill_(0)


class _Buffers:
    """A process's frame buffers, each reused once the trailer it held is dropped (in the process it
    was sent to, for a loader worker's buffers, which live in shared memory)."""

    def __init__(self) -> None:
        self.pool: list[tuple[torch.Tensor, torch.Tensor]] = []  # (frames, busy flag)

    def take(self, shape: tuple[int, ...]) -> Frames:
        for frames, busy in self.pool:
            if frames.shape == shape and not busy.item():
                busy.fill_(1)
                return Frames(frames, busy)
        # Free buffers of another size are dropped: the pool holds the buffers in flight, plus one.
        self.pool = [(frames, busy) for frames, busy in self.pool if busy.item()]
        frames, busy = torch.empty(shape, dtype=torch.uint8), torch.ones(1, dtype=torch.uint8)
        if get_worker_info() is not None:
            try:
                frames.share_memory_(), busy.share_memory_()
            except RuntimeError as error:  # "unable to allocate shared memory(shm) ..."
                raise NoSharedMemory(f"{frames.nbytes / 2**20:.0f} MB of frames: {error}") from None
        self.pool.append((frames, busy))
        return Frames(frames, busy)


_BUFFERS = _Buffers()


@dataclass
class DecodedVideo:
    """The kept frames in decode order; per plan name, the row of its frame `step·i` at position i;
    the number of usable frames decoded; and what went wrong without stopping the trailer (the
    engine logs `warnings` for the item)."""

    frames: Frames
    rows: dict[str, list[int]]
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
                if count == 0:
                    warnings.append(f"its first frame is at {float(frame.pts * stream.time_base):.2f} s, after the "
                                    f"{MAX_SECONDS} s the recipe reads (timestamps as stored, not shifted)")
                return
            yield frame
            count += 1
            if count == wanted:
                return


class _FrameBuffer:
    """Room for the kept frames, allocated at the first one (its size fixes the trailer's size): for as
    many as the stream's header announces (a 2-frame trailer needs no room for 160), grown to
    `capacity` where the header announced fewer or nothing."""

    def __init__(self, capacity: int, announced: int) -> None:
        self.capacity, self.rows, self.used = capacity, min(capacity, announced) or capacity, 0
        self.buffer: Frames | None = None

    def append(self, frame, index: int, warnings: list[str]) -> int:
        if self.buffer is None:
            self.buffer = _BUFFERS.take((self.rows, frame.height, frame.width, 3))
        elif self.used == len(self.buffer.tensor):
            self.buffer = self._copy(self.capacity)
        height, width = self.buffer.tensor.shape[1:3]
        if (frame.height, frame.width) != (height, width):
            if not any(w.startswith("frame size changed") for w in warnings):
                warnings.append(f"frame size changed from {width}x{height} to {frame.width}x{frame.height} "
                                f"at frame {index}; such frames are scaled to {width}x{height}")
            frame = frame.reformat(width=width, height=height)
        # A NumPy copy: torch's would split 3 MB over its intra-op threads, which costs more than it saves
        self.buffer.tensor.numpy()[self.used] = frame.to_ndarray(format="rgb24")
        self.used += 1
        return self.used - 1

    def kept(self) -> Frames:
        """The filled rows; a copy when the trailer ended early, so that no unused room travels."""
        assert self.buffer is not None
        return self.buffer if self.used == len(self.buffer.tensor) else self._copy(self.used)

    def _copy(self, rows: int) -> Frames:
        """A buffer of `rows` rows holding the filled ones (the current buffer is free again once dropped)."""
        assert self.buffer is not None
        copy = _BUFFERS.take((rows, *self.buffer.tensor.shape[1:]))
        copy.tensor[:self.used] = self.buffer.tensor[:self.used]
        return copy


def _kept_frames(plans: tuple[FramePlan, ...], decoded: int | None = None) -> int:
    """How many of the first `decoded` frames (by default all the plans use) some plan keeps."""
    end = max(plan.frames for plan in plans) if decoded is None else decoded
    return sum(1 for index in range(end) if any(plan.wants(index) for plan in plans))


def decode(path: Path, plans: tuple[FramePlan, ...]) -> DecodedVideo:
    """Decode once, keep each frame any plan wants (once), note its row for every plan that wants it."""
    warnings: list[str] = []
    wanted = max(plan.frames for plan in plans)
    rows: dict[str, list[int]] = {plan.name: [] for plan in plans}
    count = 0
    with open_media(path) as container:
        if not container.streams.video:
            kinds = ", ".join(sorted({stream.type for stream in container.streams})) or "none"
            raise ValueError(f"no video stream in {path.name} (streams: {kinds})")
        stream = container.streams.video[0]
        buffer = _FrameBuffer(_kept_frames(plans), _kept_frames(plans, min(wanted, stream.frames)))
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = DECODE_THREADS
        for index, frame in enumerate(_frames_until_done(container, stream, wanted, warnings)):
            users = [plan for plan in plans if plan.wants(index)]
            if users:
                row = buffer.append(frame, index, warnings)
                for plan in users:
                    rows[plan.name].append(row)
            count = index + 1
    if count == 0:
        raise ValueError("no video frame could be decoded" + (f": {warnings[-1]}" if warnings else ""))
    return DecodedVideo(buffer.kept(), rows, count, warnings)


@dataclass(frozen=True)
class VideoLoader:
    plans: tuple[FramePlan, ...]
    prefetch = 2  # trailers in flight per loader worker: each is hundreds of MB and gives several clips

    @property
    def shared_bytes(self) -> int:
        """Shared memory a trailer may take: its kept frames at 1080p (a CPU run's clips are smaller)."""
        return _kept_frames(self.plans) * FRAME_BYTES

    def __call__(self, item: Item) -> DecodedVideo:
        return decode(Path(item.source), self.plans)


def loader_for(encoders: list, options: LoaderOptions = LoaderOptions()) -> VideoLoader:
    return VideoLoader(tuple(encoder.frame_plan for encoder in encoders))
