"""Trailers from a link file: yt-dlp as a library, one `<id>.mp4` per movie, and the `trailers.tsv`
catalogue the audio and video extractors read (docs/media.md).

Only finished trailers stand in the output folder: yt-dlp writes everything else (its
`.part` files, the `<id>.f137.mp4` streams it merges) into the hidden `.partial/`
subfolder, and a trailer is renamed into place once its manifest record is written. A
rerun skips every finished trailer and lets yt-dlp resume a partial one.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from http.client import IncompleteRead
from pathlib import Path
from typing import Any

from m3l.catalog import Item, id_problem, printable, read_links
from m3l.download import run
from m3l.errors import UserError
from m3l.store.files import OutputError, open_regular, real_folder
from m3l.store.writer import atomic_write_bytes

DEFAULT_FORMAT = "bestvideo+bestaudio/best"  # M3L's own choice, merged to mp4
CATALOGUE = "trailers.tsv"
MANIFEST = "download_manifest.jsonl"
GONE = "gone.jsonl"
PARTIAL = ".partial"  # as download_posters.py
EXIT_BLOCKED = 3
CUT_HINT = ("with --first-seconds FFmpeg reads the URL itself, which fails where the server ignores Range requests "
            "and the file's index is at its end: download this one whole, without --first-seconds")

# What yt-dlp's messages say, lower-cased, for each failure class (checked in this order).
_BLOCKED = ("not a bot", "http error 429", "too many requests", "rate limit", "rate-limit", "http error 403")
_GONE = ("private video", "video unavailable", "this video is not available", "has been removed",
         "no longer available", "account associated with this video has been terminated", "does not exist",
         "http error 404", "http error 410", "unsupported url")
_NETWORK = ("http error 5", "timed out", "connection", "incomplete read", "network is unreachable",
            "temporary failure in name resolution", "did not match the expected", "content too short")


@dataclass(frozen=True)
class Settings:
    """From the environment: a network failure is tried again `retries` times, after `backoff` s, then twice
    as long each time; `timeout` bounds each socket read."""

    retries: int
    backoff: float
    timeout: float

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(retries=run.env_number("M3L_DOWNLOAD_RETRIES", 3, whole=True),
                   backoff=run.env_number("M3L_DOWNLOAD_BACKOFF", 20),
                   timeout=run.env_number("M3L_DOWNLOAD_TIMEOUT", 30, above_zero=True))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run.add_arguments(parser, "media/trailers")
    parser.add_argument("--format", help=f"yt-dlp format selection (default: {DEFAULT_FORMAT}, as M3L)")
    parser.add_argument("--max-height", type=run.positive, metavar="PIXELS",
                        help="best video at most this tall, such as 720: smaller, faster files; the recipes' "
                             "inputs move a little (docs/media.md)")
    parser.add_argument("--first-seconds", type=_seconds, metavar="S",
                        help="keep only the first S seconds (stream copy, no re-encoding); every recipe reads "
                             "at most 30 s, so 31 keeps their inputs identical (docs/media.md)")
    parser.add_argument("--delay", type=_delay, default=(8.0, 13.0), metavar="MIN-MAX",
                        help="seconds to wait between two videos, drawn at random (default: 8-13, as M3L)")
    parser.add_argument("--cookies", type=Path, help="Netscape cookie file of a logged-in browser session")
    parser.add_argument("--proxy", help="proxy URL for every request (http://..., socks5://...)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="ask again for the trailers an earlier run found gone (private, removed)")
    parser.add_argument("--stop-after-blocked", type=run.positive, default=3, metavar="N",
                        help="stop after N trailers in a row were refused as a bot or rate-limited (default: 3)")


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _delay(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        bounds = float(low), float(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError("must be SECONDS or MIN-MAX, such as 8-13") from None
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError("must be 0 or more, the smaller first")
    return bounds


def format_of(args: argparse.Namespace) -> str:
    if args.format and args.max_height:
        raise UserError("--format and --max-height both choose the format: give one of them")
    if args.max_height:
        return f"bestvideo[height<={args.max_height}]+bestaudio/best[height<={args.max_height}]"
    return args.format or DEFAULT_FORMAT


def prepare_out(out: Path) -> Path:
    """`--out` (never under data/), with its hidden folder for what is not finished yet."""
    out = run.prepare_out(out)
    real_folder(out / PARTIAL)
    return out


class Ledger:
    """A JSON-lines file holding one record per movie id: the last line of an id wins, and a line
    torn by a kill is dropped when the file is next opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict] = {}
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("movie_id"), str):
                self.records[record["movie_id"]] = record
        if text and (not text.endswith("\n") or len(self.records) < text.count("\n")):
            self.compact()

    def add(self, record: dict) -> None:
        self.records[record["movie_id"]] = record
        fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise OutputError(self.path, error) from None

    def remove(self, movie_id: str) -> None:
        if self.records.pop(movie_id, None) is not None:
            self.compact()

    def compact(self) -> None:
        atomic_write_bytes(self.path, "".join(json.dumps(record, ensure_ascii=False) + "\n"
                                              for record in self.records.values()).encode("utf-8"))


@contextmanager
def ffmpeg_on_path() -> Iterator[Path]:
    """imageio-ffmpeg's binary as `ffmpeg` in a folder put first on this process's PATH: yt-dlp's
    FFmpeg downloader looks it up there by that name and ignores `ffmpeg_location`."""
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory(prefix="m3l-ffmpeg-") as folder:
        os.symlink(imageio_ffmpeg.get_ffmpeg_exe(), Path(folder) / "ffmpeg")
        previous = os.environ.get("PATH", "")
        os.environ["PATH"] = folder + os.pathsep + previous
        try:
            yield Path(folder)
        finally:
            os.environ["PATH"] = previous


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """One run at a time writes into a trailer folder."""
    with os.fdopen(open_regular(out / PARTIAL / "lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a") as handle:
        run.lock_for_this_run(handle.fileno(), out)
        yield


class _Quiet:
    """yt-dlp's logger: its messages would break the one-line-per-id log; errors reach us as exceptions."""

    def debug(self, message: str) -> None:
        pass

    info = warning = error = debug


def check_arguments(args: argparse.Namespace) -> None:
    """The mistakes in the options that need more than argparse, found before anything is written."""
    format_of(args)
    if args.cookies and not args.cookies.is_file():
        raise UserError(f"--cookies {args.cookies}: no such file")


def ytdlp_options(args: argparse.Namespace, settings: Settings, ffmpeg_dir: Path) -> dict[str, Any]:
    options: dict[str, Any] = {
        "format": format_of(args), "merge_output_format": "mp4",
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": "mp4"}],
        "ffmpeg_location": str(ffmpeg_dir), "noplaylist": True, "quiet": True, "no_warnings": True,
        "noprogress": True, "logger": _Quiet(), "socket_timeout": settings.timeout, "retries": settings.retries,
        "fragment_retries": settings.retries, "continuedl": True,
    }
    deno = shutil.which("deno", path=str(Path(sys.executable).parent)) or shutil.which("deno")
    if deno:  # YouTube's player JavaScript runs in it (with the yt-dlp-ejs scripts)
        options["js_runtimes"] = {"deno": {"path": deno}}
    if args.cookies:
        options["cookiefile"] = str(args.cookies)
    if args.proxy:
        options["proxy"] = args.proxy
    if args.first_seconds:  # FFmpeg reads the URLs itself, with cut_arguments
        options["external_downloader"] = {"default": "ffmpeg"}
    return options


def cut_arguments(seconds: float, merged: bool) -> dict[str, list[str]]:
    """FFmpeg's options before each input of a --first-seconds download, so that the cut decodes as the
    whole download does up to 30 s. Each input stops `seconds` after its own start (an output -t would
    count on the output's clock). One file keeps its timestamps as stored (-copyts), as the whole
    download is its bytes; video and audio merged are shifted to start at 0, as yt-dlp's merger
    shifts them in the whole download."""
    cut = ["-t", f"{seconds:g}"]
    return {"ffmpeg_i": cut if merged else ["-copyts", *cut]}


def failure_class(error: BaseException) -> str:
    """gone (private, removed: retrying will not help), blocked (bot check, rate limit), network
    (worth retrying) or failed (anything else)."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import ContentTooShortError

    text = message_of(error).lower()
    chain = _causes(error)
    statuses = {cause.status for cause in chain if isinstance(cause, HTTPError)}
    if 429 in statuses or any(mark in text for mark in _BLOCKED):
        return "blocked"
    if statuses & {404, 410} or any(mark in text for mark in _GONE):
        return "gone"
    network = (TransportError, TimeoutError, ConnectionError, IncompleteRead, ContentTooShortError)
    if any(status >= 500 for status in statuses) or any(isinstance(cause, network) for cause in chain) \
            or any(mark in text for mark in _NETWORK):
        return "network"
    return "failed"


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what caused it, through yt-dlp's `exc_info` and `cause` links."""
    chain, pending = [], [error]
    while pending and len(chain) < 20:
        cause = pending.pop()
        if cause is None or any(cause is seen for seen in chain):
            continue
        chain.append(cause)
        exc_info = getattr(cause, "exc_info", None)
        pending += [exc_info[1] if exc_info else None, getattr(cause, "cause", None), cause.__cause__,
                    cause.__context__]
    return [cause for cause in chain if isinstance(cause, BaseException)]


def message_of(error: BaseException) -> str:
    """yt-dlp's message on one line, without its `ERROR:` prefix and colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error) or type(error).__name__)
    text = " ".join(text.replace("ERROR: ", "").split())
    return text if len(text) <= 300 else text[:297] + "..."


def manifest_record(item: Item, info: dict, path: Path, seconds: float, first_seconds: float | None) -> dict:
    from yt_dlp.version import __version__

    fields = ("webpage_url", "extractor_key", "id", "title", "format_id", "format", "resolution", "width", "height",
              "fps", "vcodec", "acodec", "duration")
    return {"movie_id": item.id, "url": item.source, **{key: info.get(key) for key in fields},
            "first_seconds": first_seconds, "bytes": path.stat().st_size,
            "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 3), "yt_dlp": __version__}


def media_bytes(path: Path) -> int:
    """The bytes of the top-level `mdat` boxes of an MP4 file: 0 when FFmpeg wrote the header alone
    (it exits with 0 when it could not read a single packet)."""
    total, size = 0, path.stat().st_size
    with open(path, "rb") as handle:
        while handle.tell() + 8 <= size:
            start = handle.tell()
            length, kind = struct.unpack(">I4s", handle.read(8))
            header = 8
            if length == 1:
                large = handle.read(8)
                if len(large) < 8:  # the file ends inside the box's size: cut short
                    break
                length, header = struct.unpack(">Q", large)[0], 16
            elif length == 0:
                length = size - start
            if length < header:
                break
            if kind == b"mdat":
                total += length - header
            handle.seek(start + length)
    return total


class Blocked(Exception):
    """Too many trailers in a row refused as a bot or rate-limited: asking on would make it worse."""


class TrailerRun:
    """One run over the links: per id, skip what is there, download the rest; a log line for each id not
    downloaded, and a line on stdout for every id."""

    def __init__(self, args: argparse.Namespace, settings: Settings, out: Path, ffmpeg_dir: Path,
                 log: run.RunLog) -> None:
        self.args, self.settings, self.out, self.log = args, settings, out, log
        self.partial = out / PARTIAL
        self.options = ytdlp_options(args, settings, ffmpeg_dir)
        self.manifest = Ledger(out / MANIFEST)
        self.gone = Ledger(out / GONE)
        self.failures: Counter[str] = Counter()
        self.blocked_in_a_row = 0
        self.asked = False  # whether a video was asked for yet: the delay goes between two of them

    def one(self, item: Item) -> None:
        final, gone = self.out / f"{item.id}.mp4", self.gone.records.get(item.id)
        if final.is_file():
            self.log.already_done()
            print(f"{item.id}\talready downloaded", flush=True)
        elif gone and gone.get("url") == item.source and not self.args.retry_failed:  # a new link is asked
            self.report(item, "gone", f"{gone['reason']} (found by an earlier run; --retry-failed asks again)")
        else:
            self.download(item, final)

    def download(self, item: Item, final: Path) -> None:
        retries = self.settings.retries
        for attempt in range(retries + 1):
            self.pause(self.settings.backoff * 2 ** (attempt - 1) if attempt else None)
            started = time.monotonic()
            try:
                info = self.fetch(item)
            except Exception as error:  # yt-dlp's DownloadError, or what its post-processors raise
                kind, reason = failure_class(error), message_of(error)
                if kind != "network" or attempt == retries:
                    return self.failed(item, kind, reason, attempt + 1)
                continue
            return self.finished(item, info, final, time.monotonic() - started)

    def pause(self, backoff: float | None) -> None:
        """Wait the polite delay between two videos, or the backoff before asking again."""
        if backoff is not None:
            time.sleep(backoff)
        elif self.asked:
            time.sleep(random.uniform(*self.args.delay))
        self.asked = True

    def fetch(self, item: Item) -> dict:
        import yt_dlp

        options = {**self.options, "outtmpl": {"default": str(self.partial / f"{item.id}.%(ext)s")}}
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(item.source, download=False)  # the formats chosen, nothing downloaded
            if info.get("_type") == "playlist":
                raise ValueError("the link is a playlist, not one video")
            if self.args.first_seconds:
                merged = bool(info.get("requested_formats"))
                ydl.params["external_downloader_args"] = cut_arguments(self.args.first_seconds, merged)
            return ydl.process_ie_result(info, download=True)

    def finished(self, item: Item, info: dict, final: Path, seconds: float) -> None:
        staged = self.partial / final.name
        if not staged.is_file() or staged.stat().st_size == 0:
            return self.failed(item, "failed", f"yt-dlp wrote no {final.name}", 1)
        if self.args.first_seconds and not media_bytes(staged):
            staged.unlink()
            return self.failed(item, "failed", "the cut holds no video or audio", 1)
        record = manifest_record(item, info, staged, seconds, self.args.first_seconds)
        try:
            with open(staged, "rb") as handle:
                os.fsync(handle.fileno())
            self.manifest.add(record)
            os.replace(staged, final)
        except OSError as error:
            raise OutputError(final, error) from None
        self.gone.remove(item.id)
        self.blocked_in_a_row = 0
        self.log.done()
        kept = f", first {self.args.first_seconds:g} s" if self.args.first_seconds else ""
        print(f"{item.id}\tdownloaded\t{record['resolution'] or '?'} {record['format_id']}{kept}, "
              f"{record['bytes'] / 1e6:.1f} MB in {seconds:.1f} s", flush=True)

    def failed(self, item: Item, kind: str, reason: str, attempts: int) -> None:
        if kind == "gone":
            self.gone.add({"movie_id": item.id, "url": item.source, "reason": reason,
                           "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            reason += " (not asked again unless --retry-failed)"
        elif kind == "network":
            reason += f" (after {attempts} attempts; a rerun tries again)"
        elif kind == "failed" and self.args.first_seconds:
            reason += f" ({CUT_HINT})"
        self.report(item, kind, reason)
        self.blocked_in_a_row = self.blocked_in_a_row + 1 if kind == "blocked" else 0
        if self.blocked_in_a_row >= self.args.stop_after_blocked:
            raise Blocked()

    def report(self, item: Item, kind: str, reason: str) -> None:
        self.failures[kind] += 1
        self.log.fail(item.id, f"{printable(item.source)}: {reason}", status=kind)
        print(f"{item.id}\t{kind}\t{reason}", flush=True)

    def write_catalogue(self) -> Path:
        """`trailers.tsv`: every finished trailer in the folder, by id, paths relative to the folder."""
        ids = sorted((path.stem for path in self.out.glob("*.mp4") if path.is_file() and not id_problem(path.stem)),
                     key=lambda movie_id: (0, int(movie_id), "") if movie_id.isdigit() else (1, 0, movie_id))
        rows = "".join(f"{movie_id}\t{movie_id}.mp4\n" for movie_id in ids)
        path = self.out / CATALOGUE
        atomic_write_bytes(path, f"movie_id\ttrailer_path\n{rows}".encode("utf-8"))
        return path

    def summary(self) -> str:
        kinds = ", ".join(f"{self.failures[kind]} {kind}" for kind in ("gone", "blocked", "network", "failed")
                          if self.failures[kind])
        return f"{self.log.finish()}" + (f"; not downloaded: {kinds}" if kinds else "")


def require_download_venv() -> None:
    """yt-dlp and FFmpeg live in the download venv alone: elsewhere, one line saying how to get it."""
    missing = [name for name in ("yt_dlp", "imageio_ffmpeg") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"this Python ({sys.executable}) lacks {', '.join(missing)}: trailers download in their own "
                        "venv: make setup-download, then .venvs/download/bin/python src/download_trailers.py ...")


def download(args: argparse.Namespace) -> int:
    require_download_venv()
    check_arguments(args)
    settings = Settings.from_environment()
    catalogue = run.selected(read_links(args.links), args)
    out = prepare_out(args.out)
    with folder_lock(out), ffmpeg_on_path() as ffmpeg_dir:
        log = run.open_log(run.log_path(args, out), "download_trailers", catalogue)
        trailers = TrailerRun(args, settings, out, ffmpeg_dir, log)
        try:
            for item in catalogue.items:
                trailers.one(item)
        except Blocked:
            print(f"stopped: {args.stop_after_blocked} trailers in a row were refused as a bot or rate-limited; "
                  "pass --cookies FILE (exported from a browser logged in to the site) or wait a few hours, then "
                  "run the same command again", file=sys.stderr)
            return EXIT_BLOCKED
        finally:
            catalogue_path = trailers.write_catalogue()
            print(f"{trailers.summary()}; catalogue: {catalogue_path}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run.main(argv, "Download trailers from a link file into <id>.mp4 files and the trailers.tsv catalogue "
                          "the audio and video extractors read (docs/media.md).", add_arguments, download)
