"""What `download_trailers.py --first-seconds 31` saves: bytes over the network and on disk, and time,
against the whole trailer, from a local server that answers Range requests (as YouTube's and most
CDNs do). Runs in the download venv:

    .venvs/download/bin/python bench/bench_trailers.py [--seconds 150] [--size 1280x720] [--repeats 3]

The trailer is generated (H.264 + AAC, index at the end of the file, as FFmpeg writes it by
default, so the cut needs a Range request to the end). The server's sockets have small send
buffers, so that the bytes it counts as sent are the bytes the client read, give or take 64 KB
a connection (yt-dlp's generic extractor opens the URL once before downloading and drops it).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, parser  # first: puts src/ and the repository on the path

from tests.download.media import serve, write_trailer
from tests.web import WebServer


def download(links: Path, out: Path, *extra: str) -> None:
    result = subprocess.run([sys.executable, str(REPO / "src" / "download_trailers.py"), "--links", str(links),
                             "--out", str(out), "--delay", "0", *extra], capture_output=True, text=True)
    if result.returncode != 0 or "1 done" not in result.stdout:
        raise SystemExit(f"download_trailers.py {' '.join(extra)} failed: {result.stdout}{result.stderr}")


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--seconds", type=float, default=150, help="trailer length (default: 150, a typical trailer)")
    options.add_argument("--size", default="1280x720", help="trailer frame size (default: 1280x720)")
    options.add_argument("--first-seconds", default="31", help="the cut measured (default: 31)")
    args = options.parse_args()
    modes = {"whole trailer": [], f"--first-seconds {args.first_seconds}": ["--first-seconds", args.first_seconds]}
    with tempfile.TemporaryDirectory() as folder, WebServer() as web:
        root = Path(folder)
        trailer = write_trailer(root / "trailer.mp4", args.seconds, size=args.size, preset="ultrafast")
        links = root / "links.tsv"
        links.write_text(f"movie_id\ttrailer_link\n1\t{serve(web, '/trailer.mp4', trailer)}\n")
        web.send_buffer = 32 * 1024
        sent: dict[str, list[int]] = {mode: [] for mode in modes}
        disk: dict[str, int] = {}
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for repeat in range(args.repeats):
            for mode, extra in modes.items():
                out = root / f"out-{repeat}-{len(extra)}"
                web.sent.clear()
                started = time.perf_counter()
                download(links, out, *extra)
                times[mode].append(time.perf_counter() - started)
                sent[mode].append(web.sent["/trailer.mp4"])
                disk[mode] = (out / "1.mp4").stat().st_size
    print(f"one {args.seconds:g} s {args.size} trailer of {disk['whole trailer'] / 1e6:.1f} MB, local server with "
          f"Range requests, median of {args.repeats}:")
    print(f"  {'':24}  {'sent by the server':>18}  {'on disk':>10}  {'seconds':>8}")
    base_sent = statistics.median(sent["whole trailer"])
    for mode in modes:
        median_sent = statistics.median(sent[mode])
        print(f"  {mode:24}  {median_sent / 1e6:9.2f} MB ({median_sent / base_sent:4.0%})  "
              f"{disk[mode] / 1e6:7.2f} MB  {statistics.median(times[mode]):8.2f}")


if __name__ == "__main__":
    main()
