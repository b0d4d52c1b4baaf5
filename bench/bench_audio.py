"""Audio extractor throughput: one decode for three models vs three decode+encode passes; decode speed.

    .venvs/audio/bin/python bench/bench_audio.py [--trailers 8] [--seconds 90] [--repeats 3]
                                                 [--full-size] [--workers 2]

Models are random-weight stand-ins built by the test fixtures (no weights can be
downloaded here): VGGish is the full network; whisper and AST are one-layer
configurations unless --full-size gives them whisper-base's and AST-base's depth and
width (same compute as the real models). Trailers are generated AAC 44.1 kHz stereo
files of --seconds, so the 30 s cut applies.

Each repeat runs, back to back on the same trailers:
  shared     one extract_audio run with whisper, ast and vggish: one decode per trailer
  separate   three extract_audio runs, one model each: three decodes per trailer
             (the original's shape, with our batching and workers)
  original   three runs, one model each, one trailer per forward pass, decoded inline
             (--batch-size 1 --workers 0: the original scripts' loop)
and, single-process, the decode alone: our loader against a plain PyAV loop that
decodes and resamples the same 30 s. Medians over the repeats are compared.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from common import extract, median_seconds, parser, print_table

MODELS = ("whisper", "ast", "vggish")


def build_store(root: Path, full_size: bool) -> Path:
    from tests.audio.stores import add_ast, add_vggish, add_whisper

    store = root / "models"
    add_whisper(store, full_size)
    add_ast(store, full_size)
    add_vggish(store)
    return store


def build_trailers(root: Path, count: int, seconds: float) -> Path:
    from tests.audio.media import write_audio

    folder = root / "trailers"
    folder.mkdir()
    for index in range(count):
        write_audio(folder / f"{index + 1}.m4a", seconds, rate=44100, layout="stereo", seed=index)
    return folder


def extract_runs(store: Path, trailers: Path, out: Path, runs: list[list[str]]) -> None:
    """The extract runs, each with its own fresh output folder."""
    for index, extra in enumerate(runs):
        extract("audio", "--trailers", trailers, "--models-dir", store, "--device", "cpu",
                "--output", out / str(index), "--no-consolidate", *extra)


def plain_pyav_decode(path: Path) -> int:
    """The straightforward loop: decode every frame of the first audio stream, resample, stop at 30 s."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        pieces, total = [], 0
        for frame in container.decode(audio=0):
            frame.pts = None
            for out in resampler.resample(frame):
                pieces.append(out.to_ndarray()[0])
                total += out.samples
            if total >= 480_000:
                break
    return len(np.concatenate(pieces)[:480_000])


def decode_all(decode: Callable[[Path], object], files: list[Path]) -> None:
    for path in files:
        decode(path)


def main() -> None:
    options = parser(__doc__, workers=2)
    options.add_argument("--trailers", type=int, default=8)
    options.add_argument("--seconds", type=float, default=90.0, help="length of each generated trailer")
    options.add_argument("--full-size", action="store_true", help="whisper-base and AST-base sized networks")
    args = options.parse_args()

    from m3l.media.audio import decode_soundtrack

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, trailers = build_store(root, args.full_size), build_trailers(root, args.trailers, args.seconds)
        files = sorted(trailers.iterdir())
        batched = ["--workers", str(args.workers)]
        contenders = {
            "shared": [["--models", ",".join(MODELS), *batched]],
            "separate": [["--models", model, *batched] for model in MODELS],
            "original": [["--models", model, "--batch-size", "1", "--workers", "0"] for model in MODELS],
        }
        median = median_seconds({
            **{name: lambda repeat, name=name, runs=runs: extract_runs(store, trailers, root / f"{name}{repeat}", runs)
               for name, runs in contenders.items()},
            "our decode": lambda _: decode_all(decode_soundtrack, files),
            "plain PyAV loop": lambda _: decode_all(plain_pyav_decode, files),
        }, args.repeats)

    size = "full-size whisper/AST" if args.full_size else "tiny whisper/AST"
    print(f"{args.trailers} trailers of {args.seconds:.0f} s (AAC 44.1 kHz stereo), {size}, full VGGish, "
          f"CPU, workers {args.workers}, median of {args.repeats}")
    print_table(median, args.trailers, "trailers")
    print(f"  shared vs separate passes: {median['separate'] / median['shared']:.2f}x")
    print(f"  shared vs original loop:   {median['original'] / median['shared']:.2f}x")
    print(f"  our decode vs plain PyAV loop: {median['plain PyAV loop'] / median['our decode']:.2f}x")


if __name__ == "__main__":
    main()
