"""What `download_trailers.py --max-height 720` changes in what the video recipes read, and what it saves.

A generated 1080p trailer (the master) is set against its 720p version (scaled by FFmpeg's
bicubic scaler and encoded again, as a site makes its 720p stream from the same master).
Each frame of both goes through each recipe's resize and center crop (docs/recipes.md,
before normalisation), and the difference is given in 8-bit levels (0-255). Beside it, the
master encoded again at 1080p: the part of the difference that a second encoding alone makes.
Then the file sizes and the median time to decode each. Runs in the video venv:

    .venvs/video/bin/python bench/bench_max_height.py [--frames 50] [--repeats 3]
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from common import median_seconds, parser  # first: puts src/ and the repository on the path

import av
import numpy as np
import torch

from m3l.media.container import open_media
from m3l.models.video import FrameTransform, MViTEncoder, R2Plus1DEncoder, SlowFastEncoder

RECIPES = {"slowfast": SlowFastEncoder, "mvit": MViTEncoder, "r2p1d": R2Plus1DEncoder}
SIZES = {"1080p": (1920, 1080), "720p": (1280, 720)}


def picture(index: int, width: int = 1920, height: int = 1080) -> np.ndarray:
    """A frame with detail at several scales: drifting waves of coarse to fine wavelength, a moving disc
    with fine stripes, and grain."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = index / 25
    channels = []
    for phase, (fx, fy) in enumerate([(1 / 180, 1 / 240), (1 / 23, 1 / 31), (1 / 4.5, 1 / 6.1)]):
        wave = np.sin(2 * np.pi * (x * fx + y * fy + t * (0.3 + phase)))
        channels.append(128 + 60 * wave + 30 * np.sin(2 * np.pi * (x * fy - y * fx) + phase))
    image = np.stack(channels, -1)
    cx, cy = width * (0.3 + 0.4 * np.sin(t)), height * (0.5 + 0.3 * np.cos(1.3 * t))
    disc = (x - cx) ** 2 + (y - cy) ** 2 < (height / 6) ** 2
    image[disc] = (220 * (np.sin(x[disc] / 2.5) > 0))[:, None] + np.array([20, 30, 10])
    image += np.random.default_rng(index).normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(path: Path, frames: Iterator[np.ndarray], size: tuple[int, int]) -> Path:
    """H.264 at CRF 18 (visually lossless, as sites encode their top renditions), `size`, 25 fps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.time_base = Fraction(1, 25)
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if (frame.width, frame.height) != size:
                frame = frame.reformat(width=size[0], height=size[1], interpolation="BICUBIC")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decoded(path: Path) -> Iterator[np.ndarray]:
    """RGB frames as m3l's decoder makes them (FFmpeg's conversion to rgb24)."""
    with open_media(path) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def recipe_input(transform: FrameTransform, rgb: np.ndarray) -> torch.Tensor:
    """The frame after the recipe's resize and crop, in 8-bit levels (normalisation left out)."""
    plain = FrameTransform(transform.resize, transform.crop, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return plain(torch.from_numpy(rgb)[None]) * 255


def differences(master: Path, other: Path) -> dict[str, tuple[float, float, float]]:
    """Per recipe: mean, 99th percentile and largest absolute difference, over every pixel of every frame."""
    found: dict[str, list[torch.Tensor]] = {name: [] for name in RECIPES}
    for a, b in zip(decoded(master), decoded(other), strict=True):
        for name, encoder in RECIPES.items():
            difference = recipe_input(encoder.transform, a) - recipe_input(encoder.transform, b)
            found[name].append(difference.abs().flatten())
    result = {}
    for name, parts in found.items():
        values = torch.cat(parts)
        sample = values[torch.randperm(len(values), generator=torch.Generator().manual_seed(0))[:1_000_000]]
        result[name] = (values.mean().item(), torch.quantile(sample, 0.99).item(), values.max().item())
    return result


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--frames", type=int, default=50, help="frames of the generated trailer (default: 50, 2 s)")
    args = options.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        master = encode(root / "master.mp4", (picture(i) for i in range(args.frames)), SIZES["1080p"])
        versions = {"720p (--max-height 720)": encode(root / "720p.mp4", decoded(master), SIZES["720p"]),
                    "1080p encoded again": encode(root / "again.mp4", decoded(master), SIZES["1080p"])}
        print(f"a generated 1080p trailer of {args.frames} frames against its other versions, after each recipe's "
              "resize and crop, in 8-bit levels (mean / 99th percentile / largest):")
        for label, path in versions.items():
            cells = "  ".join(f"{name} {mean:.2f} / {p99:.1f} / {top:.0f}"
                              for name, (mean, p99, top) in differences(master, path).items())
            print(f"  {label:24}  {cells}")
        files = {"1080p": master, "720p": versions["720p (--max-height 720)"]}
        medians = median_seconds({size: lambda _, path=path: sum(1 for _ in decoded(path))
                                  for size, path in files.items()}, args.repeats)
        print(f"file size and decode time (FFmpeg to RGB, all frames), median of {args.repeats}:")
        for size, path in files.items():
            print(f"  {size:6}  {path.stat().st_size / 1e6:6.2f} MB  {medians[size]:7.3f} s  "
                  f"{args.frames / medians[size]:7.1f} frames/s")


if __name__ == "__main__":
    main()
