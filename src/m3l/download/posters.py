"""Posters from a link file into a folder of `<id>.<ext>` files that extract_images.py reads as it is.

Each poster is fetched into `<out>/.partial/`, named by the format its bytes start with
(JPEG, PNG, WebP, GIF; the URL's extension is not trusted), checked by the extractors' own
poster reading (`m3l.media.image.check_poster`: read_poster's opening and --max-pixels guard,
a JPEG decoded at 1/8 scale, which rejects what the full decode rejects), and only then
renamed to `<out>/<id>.<ext>`: a file under a final name is always a poster the image
extractor can read. A rerun checks the posters already there the same way and asks the
network only for the others. Downloads and checks run in `--connections` threads (PIL
decodes without holding the GIL).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from m3l.catalog import Item, printable, read_links
from m3l.download import run
from m3l.download.http import FetchError, Fetcher, FetchOptions
from m3l.engines.pipeline import describe
from m3l.media import DEFAULT_MAX_PIXELS
from m3l.media.image import check_poster
from m3l.store.files import OutputError, real_folder

SIGNATURES = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"))
EXTENSIONS = (".jpg", ".png", ".webp", ".gif")
PARTIAL = ".partial"


def sniff(head: bytes) -> str | None:
    """The extension of the image format `head` (a file's first bytes) starts, None when it is none of them."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return next((extension for signature, extension in SIGNATURES if head.startswith(signature)), None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run.add_arguments(parser, "media/poster")
    defaults = FetchOptions()
    parser.add_argument("--connections", type=run.positive, default=16,
                        help="downloads (and checks) at once (default: 16)")
    parser.add_argument("--timeout", type=float, default=defaults.timeout,
                        help=f"seconds to wait to connect and for each piece of data (default: {defaults.timeout:g})")
    parser.add_argument("--attempts", type=run.positive, default=defaults.attempts,
                        help="tries per poster on timeouts, dropped connections, 5xx and 429 "
                             f"(default: {defaults.attempts})")
    parser.add_argument("--max-bytes", type=int, default=defaults.max_bytes,
                        help=f"largest poster accepted, in bytes (default: {defaults.max_bytes:,})")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse posters with more pixels than this, as extract_images.py does "
                             f"(default: {DEFAULT_MAX_PIXELS:,})")


class PosterFolder:
    """Fetches and checks posters into one folder; `fetch` runs in worker threads."""

    def __init__(self, out: Path, fetcher: Fetcher, max_pixels: int, log: run.RunLog) -> None:
        self.out = out
        self.partial = out / PARTIAL
        self.fetcher = fetcher
        self.max_pixels = max_pixels
        self.log = log

    def _problem(self, path: Path) -> str | None:
        """Why the poster at `path` is one extract_images.py cannot use, or None."""
        try:
            check_poster(path, self.max_pixels)
        except Exception as error:  # noqa: BLE001 - any decoding error is this poster's, as in the extractors
            return describe(error)
        return None

    def _existing(self, movie_id: str) -> list[Path]:
        return [path for path in (self.out / f"{movie_id}{ext}" for ext in EXTENSIONS) if path.is_file()]

    def _usable(self, movie_id: str, existing: list[Path]) -> bool:
        """Whether one of the posters already there is usable; each one that is not is logged."""
        for path in existing:
            problem = self._problem(path)
            if problem is None:
                return True
            self.log.note(movie_id, "recompute", f"existing {path.name}: {problem}")
        return False

    def _download(self, item: Item) -> str:
        """Fetch, sniff, check and rename `item`'s poster; its extension. FetchError says why it has none."""
        fd, name = tempfile.mkstemp(prefix=f"{item.id}.", dir=self.partial)
        temporary = Path(name)
        try:
            with os.fdopen(fd, "w+b") as sink:
                self.fetcher.get(item.source, sink)
                sink.seek(0)
                head = sink.read(16)
            extension = sniff(head)
            if extension is None:
                shown = printable(head.decode("latin-1"))
                raise FetchError(f"not a JPEG, PNG, WebP or GIF image: starts with {shown}")
            if problem := self._problem(temporary):
                raise FetchError(problem.replace(str(temporary), temporary.name))
            os.replace(temporary, self.out / f"{item.id}{extension}")
            return extension
        except OSError as error:
            raise OutputError(temporary, error) from None
        finally:
            temporary.unlink(missing_ok=True)

    def fetch(self, item: Item) -> None:
        existing = self._existing(item.id)
        if self._usable(item.id, existing):
            self.log.already_done()
            return
        try:
            extension = self._download(item)
        except FetchError as error:
            self.log.fail(item.id, f"{printable(item.source)}: {error}")
            return
        for path in existing:  # an unusable poster of another format would stand beside the new one
            if path.suffix != extension:
                path.unlink(missing_ok=True)
        self.log.done()


def download(args: argparse.Namespace) -> None:
    catalogue = run.selected(read_links(args.links), args)
    out = run.prepare_out(args.out)
    log = run.open_log(run.log_path(args, out), "download_posters", catalogue)
    stopping = threading.Event()
    options = FetchOptions(timeout=args.timeout, max_bytes=args.max_bytes, attempts=args.attempts)
    folder = PosterFolder(out, Fetcher(options, stopping), args.max_pixels, log)
    shutil.rmtree(folder.partial, ignore_errors=True)  # what a killed run left half-written
    real_folder(folder.partial)
    pool = ThreadPoolExecutor(args.connections, thread_name_prefix="poster")
    try:
        for future in [pool.submit(folder.fetch, item) for item in catalogue.items]:
            future.result()
    finally:
        stopping.set()
        pool.shutdown(cancel_futures=True)
        shutil.rmtree(folder.partial, ignore_errors=True)
        print(log.finish(), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download posters from a link file into a folder that "
                                                 "extract_images.py reads (docs/media.md).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run.main(lambda: download(args))
