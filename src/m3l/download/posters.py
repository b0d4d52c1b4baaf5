"""Posters from a link file into a folder of `<id>.<ext>` files that extract_images.py reads as it is.

Each poster is fetched into `<out>/.partial/`, named by the format its bytes start with
(JPEG, PNG, WebP, GIF; the URL's extension is not trusted), checked by the extractors' own
poster reading (`m3l.media.image.check_poster`: read_poster's opening and --max-pixels guard,
a JPEG decoded at 1/8 scale, which rejects what the full decode rejects), and only then
renamed to `<out>/<id>.<ext>`: a file under a final name is always a poster the image
extractor can read. A rerun checks the posters already there the same way and asks the
network only for the others. Downloads run in `--connections` threads, checks in `--workers`
processes (`CheckProcesses`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from m3l.catalog import Item, printable, read_links
from m3l.download import run
from m3l.download.http import BUFFER, FetchError, Fetcher, FetchOptions
from m3l.errors import describe
from m3l.media import DEFAULT_MAX_PIXELS
from m3l.media.image import check_poster
from m3l.store.files import OutputError, real_folder

SIGNATURES = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"))
EXTENSIONS = (".jpg", ".png", ".webp", ".gif")
PARTIAL = ".partial"
# what a check process imports (PIL for the check; pycurl with the script it re-imports as multiprocessing does),
# loaded once by the forkserver and shared by every process it forks
PRELOADED = ("PIL.Image", "PIL.JpegImagePlugin", "PIL.PngImagePlugin", "PIL.WebPImagePlugin", "PIL.GifImagePlugin",
             "pycurl")


def sniff(head: bytes) -> str | None:
    """The extension of the image format `head` (a file's first bytes) starts, None when it is none of them."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return next((extension for signature, extension in SIGNATURES if head.startswith(signature)), None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run.add_arguments(parser, "media/poster")
    defaults = FetchOptions  # its plain defaults: the environment's settings are read when the run starts
    parser.add_argument("--connections", type=run.positive, default=16, help="downloads at once (default: 16)")
    parser.add_argument("--workers", type=run.positive, default=len(os.sched_getaffinity(0)),
                        help="processes that check the posters (default: one per core)")
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


def poster_problem(path: Path, max_pixels: int) -> str | None:
    """Why the poster at `path` is one extract_images.py cannot use, or None."""
    try:
        check_poster(path, max_pixels)
    except Exception as error:  # noqa: BLE001 - any decoding error is this poster's, as in the extractors
        return describe(error)
    return None


def _start_check_process() -> None:
    """Ctrl-C is for the main process, which stops the run and these processes with it; and when the main
    process is killed (kill -9), this one leaves too, where ProcessPoolExecutor's would wait for work forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    main_process = multiprocessing.parent_process()
    threading.Thread(target=lambda: (main_process.join(), os._exit(0)), daemon=True).start()


class CheckProcesses:
    """`check(path, max_pixels)` in `workers` processes, callable from any thread.

    Processes, not threads: the check sets PIL's decompression-bomb limit, a setting of the whole
    process, while it decodes, so checks in threads of one process could run under each other's
    limits; and a poster that kills its process (the kernel's OOM killer) takes only checks down.
    A dead process breaks the whole pool: a new one takes over, and each check the break caught is
    run again alone, in a process of its own, so that only the poster that kills it fails.
    """

    KILLED = "the process checking it died (killed, e.g. by the kernel for want of memory)"

    def __init__(self, workers: int, max_pixels: int,
                 check: Callable[[Path, int], str | None] = poster_problem) -> None:
        self.workers = workers
        self.max_pixels = max_pixels
        self.check = check
        self._lock = threading.Lock()
        self._pool = _check_pool(workers)

    def problem(self, path: Path) -> str | None:
        """Why the poster at `path` is unusable, or None."""
        pool = self._pool
        try:
            return pool.submit(self.check, path, self.max_pixels).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:  # the first thread to see it broken replaces it
                    pool.shutdown(wait=False)
                    self._pool = _check_pool(self.workers)
        with _check_pool(1) as alone:
            try:
                return alone.submit(self.check, path, self.max_pixels).result()
            except BrokenProcessPool:
                return self.KILLED

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def _check_pool(workers: int) -> ProcessPoolExecutor:
    # forkserver: forking this process, whose threads may hold locks, could deadlock the child
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOADED))
    pool = ProcessPoolExecutor(workers, context, _start_check_process)
    for _ in range(workers):  # start every process now, not one per check waiting: each takes ~0.1 s to start
        pool.submit(os.getpid)
    return pool


class PosterFolder:
    """Fetches and checks posters into one folder; `fetch` runs in worker threads."""

    def __init__(self, out: Path, partial: Path, fetcher: Fetcher, checks: CheckProcesses, log: run.RunLog) -> None:
        self.out = out
        self.partial = partial
        self.fetcher = fetcher
        self.checks = checks
        self.log = log

    def _existing(self, movie_id: str) -> list[Path]:
        return [path for path in (self.out / f"{movie_id}{ext}" for ext in EXTENSIONS) if path.is_file()]

    def _usable(self, movie_id: str, existing: list[Path]) -> bool:
        """Whether one of the posters already there is usable; each one that is not is logged."""
        for path in existing:
            problem = self.checks.problem(path)
            if problem is None:
                return True
            self.log.note(movie_id, "recompute", f"existing {path.name}: {problem}")
        return False

    def _download(self, item: Item) -> str:
        """Fetch, sniff, check and rename `item`'s poster; its extension. FetchError says why it has none."""
        fd, name = tempfile.mkstemp(prefix=f"{item.id}.", dir=self.partial)
        temporary = Path(name)
        try:
            with os.fdopen(fd, "w+b", buffering=BUFFER) as sink:
                self.fetcher.get(item.source, sink)
                sink.seek(0)
                head = sink.read(16)
            extension = sniff(head)
            if extension is None:
                shown = printable(head.decode("latin-1"))
                raise FetchError(f"not a JPEG, PNG, WebP or GIF image: starts with {shown}")
            if problem := self.checks.problem(temporary):
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
    stopping = threading.Event()
    fetcher = Fetcher(FetchOptions(timeout=args.timeout, max_bytes=args.max_bytes, attempts=args.attempts), stopping)
    catalogue = run.selected(read_links(args.links), args)
    out = run.prepare_out(args.out)
    with partial_folder(out) as partial:
        log = run.open_log(run.log_path(args, out), "download_posters", catalogue)
        checks = CheckProcesses(args.workers, args.max_pixels)
        folder = PosterFolder(out, partial, fetcher, checks, log)
        pool = ThreadPoolExecutor(args.connections, thread_name_prefix="poster")
        try:
            for future in [pool.submit(folder.fetch, item) for item in catalogue.items]:
                future.result()
        finally:
            stopping.set()
            pool.shutdown(cancel_futures=True)
            checks.close()
            print(log.finish(), flush=True)


@contextmanager
def partial_folder(out: Path) -> Iterator[Path]:
    """`<out>/.partial/`, emptied of what a killed run left, held locked by this run (a second run into
    `out` stops at once), and removed at the end."""
    partial, handle = _locked(out / PARTIAL, out)
    try:
        for leftover in partial.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        try:
            yield partial
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    finally:
        os.close(handle)


def _locked(partial: Path, out: Path) -> tuple[Path, int]:
    """`partial`, made if need be, and an open handle on it that holds the run's lock. A run into the same
    folder that ends just then removes it between our making it and our lock: it is made again."""
    while True:
        real_folder(partial)
        try:
            handle = os.open(partial, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        try:
            run.lock_for_this_run(handle, out)
        except BaseException:
            os.close(handle)
            raise
        if os.fstat(handle).st_nlink:  # still in place once locked
            return partial, handle
        os.close(handle)


def main(argv: list[str] | None = None) -> int:
    return run.main(argv, "Download posters from a link file into a folder that extract_images.py reads "
                          "(docs/media.md).", add_arguments, download)
