"""Posters per second of download_posters.py against a server that answers each request after a CDN's round trip.

    .venvs/image/bin/python bench/bench_download.py [--posters 1000] [--size 2000x3000] [--delay 0.05]
        [--connections 16] [--repeats 3]

A web server of our own, in a process of its own, serves --posters JPEGs of --size (TMDB's
`original` posters are about 2000x3000; eight different pictures, each under many URLs) and
answers every request after --delay seconds, each body in one write: a CDN's work is not done
on the client's cores, so this one takes as little of them as it can. Three contenders, each
ending with the same posters checked on disk (medians of --repeats, interleaved; the posters
a run wrote are deleted outside the timings):

  download_posters   the script's own function (m3l.download.posters.main), --connections
                     downloads at once, its default check processes (one per core)
  urllib loop        one poster after another: urllib.request GET, write, the same check
                     (m3l.media.image.check_poster, a JPEG decoded at 1/8 scale), rename
  CPU ceiling        the check alone on posters already on disk, one process per core:
                     no download can be faster than this

Goals: download_posters at least 5x the loop and at least 0.8 of the ceiling.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from common import median_seconds, parser

from m3l.download.posters import main as download_posters
from m3l.media.image import check_poster

PICTURES = 8
LOOP = "urllib loop"


def jpegs(size: tuple[int, int]) -> list[bytes]:
    """PICTURES different JPEGs of `size`: smooth gradients and noise, about TMDB's bytes per pixel."""
    import numpy as np  # here, not at the top: download_posters' check processes import this script again

    rng = np.random.default_rng(0)
    width, height = size
    pictures = []
    for index in range(PICTURES):
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        shade = np.linspace(0, 255, height, dtype=np.float32)[:, None, None] * (index + 1) / PICTURES
        noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
        pixels = np.clip(ramp * 0.6 + shade * 0.4 + noise, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        pictures.append(buffer.getvalue())
    return pictures


def serve(files: dict[str, bytes], delay: float, address: multiprocessing.connection.Connection) -> None:
    """The benchmark's CDN, in a process of its own: each answer after `delay`, the body in one write (a CDN's
    CPU is not ours; this one takes as little of the cores the contenders share as it can)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = files.get(self.path, b"")
            time.sleep(delay)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address.send(f"http://127.0.0.1:{server.server_address[1]}")
    address.recv()  # until told to stop


def urllib_loop(links: list[tuple[str, str]], out: Path) -> None:
    for movie_id, url in links:
        temporary = out / f".{movie_id}.part"
        with urllib.request.urlopen(url, timeout=30) as response:
            temporary.write_bytes(response.read())
        check_poster(temporary)
        os.replace(temporary, out / f"{movie_id}.jpg")


def check(path: Path) -> None:
    check_poster(path)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--posters", type=int, default=1000)
    options.add_argument("--size", default="2000x3000", help="WIDTHxHEIGHT of each poster (default: 2000x3000)")
    options.add_argument("--delay", type=float, default=0.05, help="seconds before each answer (default: 0.05)")
    options.add_argument("--connections", type=int, default=16, help="download_posters.py --connections")
    args = options.parse_args()
    width, height = map(int, args.size.split("x"))
    pictures = jpegs((width, height))
    files = {f"/t/p/original/{n}.jpg": pictures[n % PICTURES] for n in range(1, args.posters + 1)}
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="bench-download-") as root:
        root = Path(root)
        here, there = multiprocessing.Pipe()
        server = multiprocessing.Process(target=serve, args=(files, args.delay, there), daemon=True)
        server.start()
        url = here.recv()
        links = [(path.split("/")[-1].split(".")[0], url + path) for path in files]
        (root / "links.tsv").write_text("movie_id\tposter_link\n" + "".join(f"{i}\t{u}\n" for i, u in links))
        on_disk = root / "on-disk"
        on_disk.mkdir()
        for movie_id, path in zip((i for i, _ in links), files):
            (on_disk / f"{movie_id}.jpg").write_bytes(files[path])
        folders = {"tool": root / "tool", "loop": root / "loop"}
        for folder in folders.values():
            folder.mkdir()

        def empty(contender: str) -> None:
            """Delete what the runs wrote, outside the timings, before the loop's turn only: a file system
            may skip inodes freed in the last minute or so when it makes new files (ext4 without a journal
            does, one lookup each), a scan the next download would pay for; the loop runs for over a minute."""
            if contender == LOOP:
                for folder in folders.values():
                    shutil.rmtree(folder, ignore_errors=True)
                    folder.mkdir()

        def tool(repeat: int) -> None:
            with contextlib.redirect_stdout(io.StringIO()):  # its summary
                code = download_posters(["--links", str(root / "links.tsv"), "--out", str(folders["tool"]),
                                         "--connections", str(args.connections), "--log", str(root / "log.txt")])
            assert code == 0 and len(list(folders["tool"].glob("*.jpg"))) == args.posters, "download_posters failed"

        with ProcessPoolExecutor(cores) as pool:
            list(pool.map(check, list(on_disk.iterdir())[:cores]))  # workers started and warm
            contenders = {
                f"download_posters ({args.connections} connections, {cores} check processes)": tool,
                LOOP: lambda repeat: urllib_loop(links, folders["loop"]),
                f"CPU ceiling (check only, {cores} processes)": lambda repeat: list(
                    pool.map(check, on_disk.iterdir(), chunksize=4)),
            }
            medians = median_seconds(contenders, args.repeats, empty)
        here.send("stop")
        server.join(10)
    rates = {name: args.posters / value for name, value in medians.items()}
    tool_rate, loop_rate, ceiling_rate = rates.values()
    megabytes = sum(map(len, files.values())) / args.posters / 1e6
    print(f"{args.posters} posters of {width}x{height} ({megabytes:.1f} MB each), {args.delay * 1000:.0f} ms before "
          f"each answer, {cores} cores, median of {args.repeats}:")
    width_ = max(map(len, medians))
    for name, value in medians.items():
        print(f"  {name:{width_}}  {value:8.2f} s  {rates[name]:8.1f} posters/s")
    print(f"  download_posters: {tool_rate / loop_rate:.1f}x the loop (goal >= 5), "
          f"{tool_rate / ceiling_rate:.3f} of the CPU ceiling (goal >= 0.8)")


if __name__ == "__main__":
    main()
