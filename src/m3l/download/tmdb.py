"""From MovieLens ids to plots and link files, through TMDB's API, as M³L collected them (docs/media.md).

One request per movie (`/movie/<tmdb id>?append_to_response=videos`), its answer cached
in `<out>/tmdb_cache/<movie id>.json`, so that a rerun asks only for the movies not
answered yet (`--refresh` asks again for all). From the answers:

- `plots.tsv`: `<title>: <overview>`, TMDB's `title` (not `original_title`) in `--language`;
  the published M³L text vectors were computed from exactly this form (docs/recipes.md);
- `poster_links.tsv`: `https://image.tmdb.org/t/p/original<poster_path>`;
- `trailer_links.tsv`: a YouTube watch URL: an official "Trailer" first, then any
  "Trailer", then a "Teaser"; of several, the one published first.

The key comes from the environment only (TMDB_READ_TOKEN, sent as a bearer token, or
TMDB_API_KEY), never from the command line, so that it stays out of shell histories and
process lists.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

from m3l.catalog import Item, is_web_link, read_movielens_links
from m3l.download import run
from m3l.download.http import FetchError, Fetcher, FetchOptions
from m3l.errors import UserError
from m3l.store.files import real_folder
from m3l.store.writer import atomic_write_bytes

API = "https://api.themoviedb.org/3"
IMAGES = "https://image.tmdb.org/t/p/original"
YOUTUBE = "https://www.youtube.com/watch?v="
CACHE = "tmdb_cache"
_LINE_BREAKS = re.compile(r"\r\n|[\t\r\n]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--movielens-links", type=Path, required=True,
                        help="MovieLens links.csv (movieId,imdbId,tmdbId)")
    parser.add_argument("--out", type=Path, default=Path("media"),
                        help="folder of plots.tsv, poster_links.tsv, trailer_links.tsv and the answer cache "
                             "(default: media)")
    parser.add_argument("--language", default="en-US", help="TMDB language of titles and overviews (default: en-US)")
    parser.add_argument("--refresh", action="store_true", help="ask TMDB again for movies already in the cache")
    parser.add_argument("--connections", type=run.positive, default=8, help="requests at once (default: 8)")
    parser.add_argument("--api-url", type=web_link, default=API, help=f"TMDB API root (default: {API})")
    parser.add_argument("--image-url", type=web_link, default=IMAGES,
                        help=f"root of the poster links; TMDB's other sizes end in w500, w780 (default: {IMAGES})")
    parser.add_argument("--limit", type=run.positive, help="only the first N movies of links.csv")
    parser.add_argument("--ids", type=Path, help="only the MovieLens ids listed in this file, one a line")


def web_link(text: str) -> str:
    if not is_web_link(text):
        raise argparse.ArgumentTypeError("must be an http(s) URL with a host")
    return text


def one_line(text: str) -> str:
    """`text` with each tab, CR, LF or CRLF as one space: a plot is one TSV cell on one line."""
    return _LINE_BREAKS.sub(" ", text)


def plot_of(answer: dict) -> str | None:
    """`<title>: <overview>`, as the published vectors' plots; None without an overview."""
    overview = (answer.get("overview") or "").strip()
    if not overview:
        return None
    title = (answer.get("title") or "").strip()
    return one_line(f"{title}: {overview}" if title else overview)


def poster_of(answer: dict, images: str = IMAGES) -> str | None:
    path = answer.get("poster_path")
    return f"{images.rstrip('/')}{path}" if path else None


def trailer_of(answer: dict) -> str | None:
    """The YouTube trailer M³L's rule picks: official Trailer, then any Trailer, then a Teaser; oldest first."""
    def rank(video: dict) -> int:
        if video.get("type") == "Trailer":
            return 0 if video.get("official") else 1
        return 2

    videos = [video for video in (answer.get("videos") or {}).get("results") or []
              if video.get("site") == "YouTube" and video.get("key") and video.get("type") in ("Trailer", "Teaser")]
    if not videos:
        return None
    best = min(videos, key=lambda video: (rank(video), video.get("published_at") or ""))
    return YOUTUBE + best["key"]


def credentials() -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query parameters) that authenticate with TMDB, from the environment."""
    if token := os.environ.get("TMDB_READ_TOKEN"):
        return {"Authorization": f"Bearer {token}"}, {}
    if key := os.environ.get("TMDB_API_KEY"):
        return {}, {"api_key": key}
    raise UserError("set TMDB_READ_TOKEN (TMDB's API read access token) or TMDB_API_KEY in the environment; "
                    "a key is never taken from the command line")


class Collector:
    """Asks TMDB about movies, one cached answer each; `answer` runs in worker threads."""

    def __init__(self, args: argparse.Namespace, fetcher: Fetcher, auth: dict[str, str], out: Path,
                 log: run.RunLog) -> None:
        self.fetcher, self.auth = fetcher, auth
        self.api, self.language, self.refresh = args.api_url.rstrip("/"), args.language, args.refresh
        self.cache = out / CACHE
        self.log = log
        self.refused = threading.Event()  # the key was refused: no point asking for the others

    def _cached(self, item: Item) -> dict | None:
        path = self.cache / f"{item.id}.json"
        try:  # a FIFO or anything else planted there is no answer, and never opened
            cached = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (OSError, ValueError):
            return None
        if not isinstance(cached, dict):
            return None
        same = cached.get("tmdb_id") == item.source and cached.get("language") == self.language
        return cached if same and isinstance(cached.get("answer"), dict) else None

    def _ask(self, item: Item) -> dict:
        query = urlencode({**self.auth, "language": self.language, "append_to_response": "videos"})
        sink = io.BytesIO()
        self.fetcher.get(f"{self.api}/movie/{item.source}?{query}", sink)
        try:
            answer = json.loads(sink.getvalue())
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise FetchError("TMDB's answer is not a JSON object")
        return answer

    def answer(self, item: Item) -> dict | None:
        """TMDB's answer about `item` (cached, or asked and cached), None when there is none (logged)."""
        cached = None if self.refresh else self._cached(item)
        if cached is not None:
            self.log.already_done()
            return cached["answer"]
        if self.refused.is_set():
            return None
        try:
            answer = self._ask(item)
        except FetchError as error:
            if error.status in (401, 403):
                self.refused.set()
            elif error.status == 404:
                self.log.fail(item.id, f"TMDB has no movie {item.source} (HTTP 404)")
            else:
                self.log.fail(item.id, f"TMDB movie {item.source}: {error}")
            return None
        record = {"tmdb_id": item.source, "language": self.language, "answer": answer}
        atomic_write_bytes(self.cache / f"{item.id}.json", json.dumps(record, ensure_ascii=False).encode("utf-8"))
        self.log.done()
        return answer


def write_tsv(path: Path, header: tuple[str, str], rows: list[tuple[str, str]]) -> None:
    """A TSV the catalogue readers read back cell for cell (a cell with a quote is quoted, quotes doubled)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def missing(answer: dict) -> list[str]:
    pieces = {"overview": plot_of, "poster": poster_of, "YouTube trailer or teaser": trailer_of}
    return [f"no {name}" for name, found in pieces.items() if found(answer) is None]


def answers_of(collector: Collector, items: list[Item], connections: int) -> list[dict | None]:
    """Each item's answer, asked in `connections` threads. On Ctrl-C the requests in flight stop at once,
    those waiting for a retry too, and the others are never asked."""
    pool = ThreadPoolExecutor(connections, thread_name_prefix="tmdb")
    try:
        return list(pool.map(collector.answer, items))
    finally:
        collector.fetcher.stopping.set()
        pool.shutdown(cancel_futures=True)


def collect(args: argparse.Namespace) -> None:
    headers, auth = credentials()
    # No redirects: a bearer token must not follow one to another host.
    fetcher = Fetcher(FetchOptions(max_redirects=0), headers=headers)
    catalogue = run.selected(read_movielens_links(args.movielens_links), args)
    out = run.prepare_out(args.out)
    real_folder(out / CACHE)
    log = run.open_log(out / "log_collect_links.txt", "collect_links", catalogue)
    collector = Collector(args, fetcher, auth, out, log)
    try:
        answers = answers_of(collector, catalogue.items, args.connections)
        if collector.refused.is_set():
            raise UserError("TMDB refused the key (HTTP 401/403): check TMDB_READ_TOKEN or TMDB_API_KEY; "
                            "the answers received so far are cached")
        found = [(item, answer) for item, answer in zip(catalogue.items, answers) if answer is not None]
        for item, answer in found:
            if gaps := missing(answer):
                log.note(item.id, "warning", f"TMDB movie {item.source} has {', '.join(gaps)}")
        outputs = (("plots.tsv", "plot", plot_of), ("trailer_links.tsv", "trailer_link", trailer_of),
                   ("poster_links.tsv", "poster_link", lambda answer: poster_of(answer, args.image_url)))
        for name, column, pick in outputs:
            rows = [(item.id, value) for item, answer in found if (value := pick(answer))]
            write_tsv(out / name, ("movie_id", column), rows)
    finally:
        print(log.finish(), flush=True)


def main(argv: list[str] | None = None) -> int:
    return run.main(argv, "From MovieLens links.csv to plots.tsv, poster_links.tsv and trailer_links.tsv "
                          "through TMDB's API (docs/media.md).", add_arguments, collect)
