"""What every download script shares with the extractors: its options, its per-id log and summary, its exit codes."""

from __future__ import annotations

import argparse
import fcntl
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from m3l.catalog import SAMPLES, Catalogue, check_folder_path, read_ids
from m3l.errors import UserError, stoppable_exit_code
from m3l.store.files import OutputError, open_regular, real_folder
from m3l.store.log import Summary, log_line


def env_number(name: str, default: float, *, whole: bool = False, above_zero: bool = False) -> float:
    """A setting from the environment (unset or empty: `default`): a UserError unless it is a finite number
    (a whole one with `whole`) of at least 0 (over 0 with `above_zero`). Read at the start of a run, so
    that a bad value is one `error:` line before anything is written, never a failure in a worker thread."""
    text = os.environ.get(name, "").strip() or str(default)
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (above_zero and value == 0):
        number = "a whole number" if whole else "a number"
        raise UserError(f"{name}={text!r} is not {number} {'over' if above_zero else 'of at least'} 0; "
                        f"unset it or set it to a value such as {default:g}")
    return value


def lock_for_this_run(fd: int, out: Path) -> None:
    """Lock the open file or folder `fd` while it stays open: one run at a time writes into `out`, a
    second one stops at once."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(f"another download is writing into {out}; wait for it to end") from None


def add_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--links", type=Path, required=True,
                        help="TSV of movie_id<TAB>http(s) URL rows, header optional (collect_links.py writes them)")
    parser.add_argument("--out", type=Path, default=Path(default_out), help=f"output folder (default: {default_out})")
    parser.add_argument("--log", type=Path,
                        help="log file, one line per id not downloaded (default: log_download_<out name>.txt "
                             "beside the output folder)")
    parser.add_argument("--limit", type=positive, help="process only the first N links")
    parser.add_argument("--ids", type=Path, help="process only the ids listed in this file, one a line")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def selected(catalogue: Catalogue, args: argparse.Namespace) -> Catalogue:
    """The items `--ids` and `--limit` choose."""
    if args.ids:
        catalogue = catalogue.only(read_ids(args.ids))
    return catalogue.limit(args.limit)


def prepare_out(out: Path) -> Path:
    """The output folder, made if need be: writable, never a bundled sample folder under data/."""
    out = out.absolute()
    if out.resolve().is_relative_to(SAMPLES.resolve()):
        raise UserError(f"--out {out} is under the bundled samples ({SAMPLES}): choose another folder")
    check_folder_path(out, "--out")
    real_folder(out)
    try:
        tempfile.TemporaryFile(dir=out).close()
    except OSError as error:
        raise UserError(f"output folder {out} is not writable: {error.strerror or error}") from None
    return out


class RunLog:
    """A download run's log (`<time> <name> <id> <status> <reason>`, as the extractors' logs) and summary.

    Thread-safe: downloads finish in worker threads.
    """

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self.summary = Summary(name)
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        os.close(open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT))

    def _write(self, movie_id: str, status: str, reason: str) -> None:
        fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, log_line(self.name, movie_id, status, reason).encode("utf-8"))
        except OSError as error:
            raise OutputError(self.path, error) from None
        finally:
            os.close(fd)

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.summary, field, getattr(self.summary, field) + 1)

    def done(self) -> None:
        self._count("done")

    def already_done(self) -> None:
        self._count("already_done")

    def skip(self, movie_id: str, reason: str) -> None:
        self._write(movie_id, "skipped", reason)
        self._count("skipped")

    def fail(self, movie_id: str, reason: str, status: str = "failed") -> None:
        """A failed id; `status` may say how it failed (download_trailers.py: gone, blocked, network)."""
        self._write(movie_id, status, reason)
        self._count("failed")

    def note(self, movie_id: str, status: str, reason: str) -> None:
        """A line that counts nothing: a warning, or an existing file fetched again (`recompute`)."""
        self._write(movie_id, status, reason)

    def finish(self) -> str:
        self.summary.seconds = time.perf_counter() - self._started
        return f"{self.summary} (log: {self.path})"


def log_path(args: argparse.Namespace, out: Path) -> Path:
    return args.log or out.parent / f"log_download_{out.name}.txt"


def open_log(path: Path, name: str, catalogue: Catalogue) -> RunLog:
    """The run's log with the catalogue's rejected rows and notes already in it."""
    log = RunLog(path, name)
    for movie_id, reason in catalogue.rejected:
        log.skip(movie_id, reason)
    for movie_id, reason in catalogue.warnings:
        log.note(movie_id, "warning", reason)
    return log


def main(argv: list[str] | None, description: str, arguments: Callable[[argparse.ArgumentParser], None],
         work: Callable[[argparse.Namespace], int | None]) -> int:
    """A download script: the options `arguments` adds, read from `argv`, then `work(options)`: 0 when it
    ends (ids that failed are in its log) or the code it returns, 2 and one `error:` line for a user
    mistake, 130 or 143 when interrupted."""
    parser = argparse.ArgumentParser(description=description)
    arguments(parser)
    args = parser.parse_args(argv)
    returned: list[int | None] = [None]

    def action() -> None:
        returned[0] = work(args)

    return stoppable_exit_code(action, "interrupted: every file under its final name is complete; "
                                     "run the same command again to resume") or returned[0] or 0
