"""Test trailers made on the fly with PyAV's encoders (no binary files in the repository)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


# x264 makes the same stream on every machine and every run only with one thread (its output follows the
# thread count, which follows the CPUs) and without its assembly (whose paths follow the CPU's instruction
# sets; the AVX-512 one even varies between runs on a busy machine). The damaged trailers cut or overwrite
# their file at fixed places, so any other stream would be damaged in other frames.
X264_PARAMS = "threads=1:no-asm=1"


def _picture(index: int, height: int, width: int) -> np.ndarray:
    """A moving gradient with a moving square: frames differ, windows differ."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 3 + index * 5) % 256, (y * 4 + index * 3) % 256, ((x + y) * 2 - index * 7) % 256], -1)
    side = max(4, min(height, width) // 4)
    top, left = (index * 3) % (height - side), (index * 5) % (width - side)
    image[top:top + side, left:left + side] = (250, 20, 120)
    return image.astype(np.uint8)


def write_video(path: Path, durations_ms: list[int], size: tuple[int, int] = (64, 48), start_ms: int = 0,
                pix_fmt: str = "yuv420p", options: dict[str, str] | None = None) -> Path:
    """H.264 (libx264, B-frames on) with frame i shown for durations_ms[i]; the first at `start_ms`."""
    width, height = size
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=25, options={"x264-params": X264_PARAMS})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        pts = start_ms
        for index, duration in enumerate(durations_ms):
            frame = av.VideoFrame.from_ndarray(_picture(index, height, width), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += duration
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def flat_video(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """`frames` grey frames of `size`, cheap to encode and decode even at 4K."""
    width, height = size
    picture = np.full((height, width, 3), 90, np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def remux_head(source: Path, target: Path, packets: int) -> Path:
    """The first `packets` video packets of a real file, copied without re-encoding."""
    with av.open(str(source)) as reader, av.open(str(target), "w") as writer:
        stream = reader.streams.video[0]
        out = writer.add_stream_from_template(stream)
        for count, packet in enumerate(reader.demux(stream)):
            if count == packets or packet.dts is None:
                break
            packet.stream = out
            writer.mux(packet)
    return target


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        samples = (np.sin(np.arange(16000) / 8) * 0.3).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def corrupt_packet(path: Path, index: int) -> Path:
    """Overwrite the payload of the index-th video packet (in file order) with random bytes."""
    with av.open(str(path)) as container:
        positions = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    pos, size = sorted(positions)[index]
    with open(path, "r+b") as handle:
        handle.seek(pos + 4)
        handle.write(np.random.default_rng(0).integers(0, 256, size - 8, dtype=np.uint8).tobytes())
    return path


def truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def one_clip_trailers(folder: Path) -> Path:
    """Four small, different trailers of 40 frames: one clip each for every video model (r2p1d's 32-frame
    window, mvit's, slowfast's padded 64), so the guarantee tests' runs pay one forward pass per trailer."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, size in enumerate([(96, 64), (128, 72), (80, 60), (112, 64)], 1):
        write_video(folder / f"{number}.mp4", [40] * 40, size=size)
    return folder
