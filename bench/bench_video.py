"""Video extractor throughput: one shared decode for three models vs the three single scripts.

    .venvs/video/bin/python bench/bench_video.py [--trailers 2] [--loops 6] [--workers 2] [--repeats 3]
                                                 [--end-to-end-repeats 1] [--feed] [--feed-trailers 24]

Models are the full SlowFast R50, MViT-B 32x3 and R(2+1)D-34 with random weights in
the publishers' formats (built by the test fixtures; no weights can be downloaded
here): the compute is the real models'. Trailers are 720p H.264, made by copying Big
Buck Bunny's packets --loops times (6 loops: 792 frames, 31.7 s, so the 30 s rule
matters), without re-encoding.

One run, side by side on the same trailers:
  separate   extract_slowfast.py, extract_mvit.py, extract_r2p1d.py one after another
  shared     extract_video.py --models slowfast,mvit,r2p1d: one decode per trailer
Each is timed as a process (the two alternating, --end-to-end-repeats times), with the
peak memory of its whole process tree (the script and its decoding workers,
proportional set size, sampled every 100 ms). Frames decoded per trailer are counted
by the same loader the scripts use. Then, in this process, decode-only
speed (medians over --repeats): a plain PyAV loop decoding the same 320 frames to
RGB, our decoder on them (uint8 RGB, each frame a model uses kept once), and the
three models' transforms on the device side (--device, clip by clip).

Feed (`--feed` runs it alone): trailers/s the preparation side delivers when the
models are replaced by a sink, i.e. what a device that never waits would see: the
local engine's own prepared-item stream as a GPU run configures it (--workers loader
processes, uint8 frames through shared memory, clips cut) over --feed-trailers
trailers, next to a plain PyAV decode of the same frames to RGB in as many processes,
the two alternated --repeats times (medians), each timed after its first 3 × --workers
trailers (at most half of them; a long run's rate, without process start-up and the loaders' first shared
buffers). The device-side transform cost is reported beside it. The last line is
`feed: R of plain decode (X trailers/s vs Y)`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from common import REPO, median_seconds, parser, print_table
from m3l import models
from m3l.catalog import Item
from m3l.engines.local import PreparedItems, prepared_stream
from m3l.media.video import decode, loader_for

MODELS = ("slowfast", "mvit", "r2p1d")


def build_store(root: Path) -> Path:
    from tests.video.stores import save_random_model

    store = root / "models"
    for seed, name in enumerate(MODELS):
        save_random_model(store, name, seed)
    return store


def looped_trailer(source: Path, target: Path, loops: int) -> Path:
    """`source`'s video packets `loops` times in a row, timestamps shifted, no re-encoding."""
    import av

    with av.open(str(source)) as reader:
        stream = reader.streams.video[0]
        packets = [p for p in reader.demux(stream) if p.dts is not None]
        span = max(p.pts + p.duration for p in packets) - min(p.pts for p in packets)
        with av.open(str(target), "w") as writer:
            out = writer.add_stream_from_template(stream)
            for loop in range(loops):
                for packet in packets:
                    copy = av.Packet(bytes(packet))
                    copy.pts, copy.dts = packet.pts + loop * span, packet.dts + loop * span
                    copy.duration, copy.time_base, copy.stream = packet.duration, packet.time_base, out
                    copy.is_keyframe = packet.is_keyframe
                    writer.mux(copy)
    return target


def build_trailers(root: Path, count: int, loops: int) -> Path:
    from tests.testlib import bigbuckbunny

    folder = root / "trailers"
    folder.mkdir()
    first = looped_trailer(bigbuckbunny(), folder / "1.mp4", loops)
    for index in range(2, count + 1):
        os.link(first, folder / f"{index}.mp4")
    return folder


def _tree_pss(pid: int) -> int:
    """Proportional set size of `pid` and all its descendants: memory shared between the
    script and its workers (libraries, tensors in shared memory) is counted once."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            total += int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:"))) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, StopIteration):
            continue
    return total


def timed_script(script: str, *args: object) -> tuple[float, int]:
    """Wall seconds and peak process-tree memory of one extract script run."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(REPO / "src" / script), *map(str, args)], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    sampler_done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampler_done.wait(0.1):
            peak = max(peak, _tree_pss(process.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    output, _ = process.communicate()
    sampler_done.set()
    sampler.join()
    if process.returncode != 0 or " failed" in output and " 0 failed" not in output:
        raise SystemExit(f"{script} failed:\n{output}")
    return time.perf_counter() - started, peak


def encoders(names, device: str = "cpu") -> list:
    return [models.encoder_class(info)(info, [], device) for info in models.resolve(list(names), "video")]


def frames_decoded(trailer: Path, names) -> int:
    return loader_for(encoders(names), None)(Item("1", str(trailer))).count


def plain_pyav(trailer: Path, frames: int) -> int:
    import av

    count = 0
    with av.open(str(trailer)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
            if count == frames:
                break
    return count


def frames_up_to_30s(trailer: Path) -> int:
    import av

    with av.open(str(trailer)) as container:
        stream = container.streams.video[0]
        return sum(1 for frame in container.decode(stream) if frame.pts * stream.time_base <= 30)


def steady_rate(deliveries: Iterator, skip: int) -> float:
    """Items per second once `skip` items are delivered."""
    count, started = 0, None
    for _ in deliveries:
        count += 1
        if count == skip:
            started = time.perf_counter()
    return (count - skip) / (time.perf_counter() - started)


def plain_decodes(trailers: list[Path], frames: int, workers: int, skip: int) -> float:
    """Trailers/s decoding `frames` frames of each to RGB in `workers` processes."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        return steady_rate(pool.map(plain_pyav, trailers, [frames] * len(trailers)), skip)


def fed_trailers(trailers: list[Path], workers: int, skip: int) -> float:
    """Trailers/s of the local engine's prepared-item stream for a GPU run (uint8 clips: the
    transforms are the device's), consumed by a sink. Preparing touches no device."""
    chosen = encoders(MODELS, "cuda")
    items = [Item(str(i), str(path)) for i, path in enumerate(trailers)]
    dataset = PreparedItems(items, loader_for(chosen, None), [chosen] * len(items))
    return steady_rate(prepared_stream(dataset, workers, batch_size=8), skip)


def device_transforms(trailer: Path, device: str) -> Callable[[int], object]:
    """One trailer's clips turned into the three models' inputs on `device` (on the CPU: one thread,
    as in a loader worker, where the CPU path runs them)."""
    import torch

    if device == "cpu":
        torch.set_num_threads(1)
    chosen = encoders(MODELS, device)
    video = loader_for(chosen, None)(Item("1", str(trailer)))
    clips = [(encoder, clip) for encoder in chosen for clip in encoder.clips(video)]

    def run(_: int) -> None:
        for encoder, clip in clips:
            encoder.clip_tensor(clip)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return run


def feed(trailer: Path, count: int, workers: int, repeats: int, device: str) -> None:
    """Print the feed measurement; its last line is the ratio to plain decoding."""
    frames = frames_decoded(trailer, MODELS)
    trailers, skip = [trailer] * count, min(3 * workers, count // 2)
    plain, ours = [], []
    for _ in range(repeats):  # alternated, so that a busy machine hits both alike
        plain.append(plain_decodes(trailers, frames, workers, skip))
        ours.append(fed_trailers(trailers, workers, skip))
    plain_rate, our_rate = statistics.median(plain), statistics.median(ours)
    transform = median_seconds({"transforms": device_transforms(trailer, device)}, repeats)["transforms"]
    print(f"feed, {count} trailers x {frames} frames, {workers} workers, rates after the first {skip} trailers, "
          f"median of {repeats}")
    print(f"  plain PyAV decode to RGB, {workers} processes   {plain_rate:7.3f} trailers/s")
    print(f"  our loaders -> prepared stream -> sink          {our_rate:7.3f} trailers/s")
    print(f"  device side ({device}): three models' transforms  {transform:7.3f} s per trailer")
    print(f"feed: {our_rate / plain_rate:.2f} of plain decode ({our_rate:.3f} trailers/s vs {plain_rate:.3f})")


def end_to_end(root: Path, trailers: Path, workers: int, repeats: int) -> tuple[tuple[float, int], tuple[float, int]]:
    """Median seconds and peak memory of the three single scripts together, then of extract_video.py."""
    store = build_store(root)
    common = ["--trailers", trailers, "--models-dir", store, "--workers", workers, "--no-consolidate"]
    separate_runs, shared_runs = [], []
    for repeat in range(repeats):  # alternated, so that a busy machine hits both alike
        runs = [timed_script(f"extract_{name}.py", *common, "--output", root / f"separate{repeat}")
                for name in MODELS]
        separate_runs.append((sum(s for s, _ in runs), max(p for _, p in runs)))
        shared_runs.append(timed_script("extract_video.py", *common, "--output", root / f"shared{repeat}"))
    return ((statistics.median(s for s, _ in separate_runs), max(p for _, p in separate_runs)),
            (statistics.median(s for s, _ in shared_runs), max(p for _, p in shared_runs)))


def main() -> None:
    options = parser(__doc__, workers=2)
    options.add_argument("--trailers", type=int, default=2)
    options.add_argument("--loops", type=int, default=6)
    options.add_argument("--end-to-end-repeats", type=int, default=1, help="0 leaves out the end-to-end runs")
    options.add_argument("--feed", action="store_true", help="only the feed measurement")
    options.add_argument("--feed-trailers", type=int, default=24)
    options.add_argument("--device", default="cpu", help="where the transforms are timed (default: cpu)")
    args = options.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.feed:
            feed(build_trailers(root, 1, args.loops) / "1.mp4", args.feed_trailers, args.workers, args.repeats,
                 args.device)
            return
        trailers = build_trailers(root, args.trailers, args.loops)
        trailer = trailers / "1.mp4"
        whole = end_to_end(root, trailers, args.workers, args.end_to_end_repeats) if args.end_to_end_repeats else None
        per_model = {name: frames_decoded(trailer, [name]) for name in MODELS}
        shared_frames = frames_decoded(trailer, MODELS)
        original_frames = 3 * frames_up_to_30s(trailer)

        plans = tuple(encoder.frame_plan for encoder in encoders(MODELS))
        decoding = median_seconds({
            "plain PyAV loop to RGB": lambda _: plain_pyav(trailer, shared_frames),
            "our decoder, kept frames uint8 RGB": lambda _: decode(trailer, plans),
            f"three models' transforms ({args.device})": device_transforms(trailer, args.device),
        }, args.repeats)

        print(f"{args.trailers} trailers, 720p H.264, {original_frames // 3} frames up to 30 s, "
              f"{args.workers} decoding workers, {os.cpu_count()} cores")
        print("frames decoded per trailer")
        print(f"  original scripts (each decodes 30 s)  {original_frames:6d}")
        print(f"  separate: {' + '.join(f'{name} {n}' for name, n in per_model.items())} = {sum(per_model.values()):6d}")
        print(f"  shared: extract_video.py              {shared_frames:6d}   "
              f"{shared_frames / sum(per_model.values()):.2f} of separate, {shared_frames / original_frames:.2f} of original")
        if whole:
            (separate_seconds, separate_peak), shared = whole
            print(f"end to end, median of {args.end_to_end_repeats} (model inference on CPU dominates)")
            print(f"  separate  {separate_seconds:7.1f} s  {args.trailers / separate_seconds:.4f} trailers/s  "
                  f"peak memory {separate_peak / 2**30:.2f} GiB")
            print(f"  shared    {shared[0]:7.1f} s  {args.trailers / shared[0]:.4f} trailers/s  "
                  f"peak memory {shared[1] / 2**30:.2f} GiB   speed-up {separate_seconds / shared[0]:.2f}x")
        print(f"decode only, {shared_frames} frames, one thread (median of {args.repeats})")
        print_table(decoding, shared_frames, "frames")
        plain = decoding["plain PyAV loop to RGB"]
        print(f"  our decoder vs plain: {plain / decoding['our decoder, kept frames uint8 RGB']:.2f}x")
        feed(trailer, args.feed_trailers, args.workers, args.repeats, args.device)

if __name__ == "__main__":
    main()
