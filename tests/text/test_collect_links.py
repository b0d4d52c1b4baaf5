"""collect_links.py against a fake TMDB API (tests/web.py): the plot form, the trailer rule, the cache, the key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from m3l.catalog import read_links, read_plots
from m3l.cli import main as extract_main
from m3l.download.tmdb import main, one_line
from tests.outputs import read_vectors
from tests.testlib import REPO, SRC
from tests.web import Fault, WebServer

FAST = {"M3L_DOWNLOAD_BACKOFF": "0.01", "M3L_DOWNLOAD_MAX_WAIT": "5"}


def video(key: str, kind: str = "Trailer", official: bool = True, published: str = "2001-01-01T00:00:00.000Z",
          site: str = "YouTube") -> dict:
    return {"key": key, "type": kind, "official": official, "published_at": published, "site": site,
            "iso_639_1": "en", "name": f"{kind} {key}"}


MOVIES = {  # tmdb id: (details, videos)
    100: ({"title": "Toy Tale", "original_title": "Spielzeug", "poster_path": "/toy.jpg",
           "overview": "Led by a cowboy,\ttoys live\r\nhappily\nuntil a spaceman\rarrives."},
          [video("teaser", "Teaser", published="1990-01-01T00:00:00.000Z"),
           video("unofficial", official=False, published="1991-01-01T00:00:00.000Z"),
           video("vimeo-old", site="Vimeo", published="1980-01-01T00:00:00.000Z"),
           video("official-new", published="1996-01-01T00:00:00.000Z"),
           video("official-old", published="1995-06-01T00:00:00.000Z"),
           video("featurette", "Featurette", published="1970-01-01T00:00:00.000Z")]),
    200: ({"title": '"Weird" Tales', "poster_path": "/weird.png", "overview": 'A "quoted" story.'},
          [video("unofficial-b", official=False, published="2003-05-01T00:00:00.000Z"),
           video("unofficial-a", official=False, published="2002-05-01T00:00:00.000Z")]),
    300: ({"title": "Silent", "poster_path": None, "overview": ""}, [video("teaser-only", "Teaser")]),
    400: ({"title": "No Videos", "poster_path": "/nv.jpg", "overview": "Nothing to watch."}, []),
}
LINKS_CSV = "movieId,imdbId,tmdbId\n1,0114709,100\n2,0113497,200\n3,0000003,300\n4,0000004,400\n" \
            "5,0000005,\n6,0000006,999\n../7,0000007,100\n"


@pytest.fixture
def tmdb(monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TMDB_READ_TOKEN", raising=False)
    monkeypatch.setenv("TMDB_API_KEY", "test-key")
    with WebServer(key="test-key") as web:
        for tmdb_id, (details, videos) in MOVIES.items():
            web.tmdb[tmdb_id] = {"details": details, "videos": videos}
        yield web


def collect(web, tmp_path, *options) -> int:
    links = tmp_path / "links.csv"
    links.write_text(LINKS_CSV)
    return main(["--movielens-links", str(links), "--out", str(tmp_path / "media"), "--api-url", f"{web.url}/3",
                 *map(str, options)])


def log_of(out) -> dict[str, str]:
    return {line.split(" ")[2]: line.split(" ", 3)[3]
            for line in (out / "log_collect_links.txt").read_text().splitlines()}


def test_plots_and_links_in_m3l_form_read_back_by_the_extractors_readers(tmdb, tmp_path, capsys):
    tmdb.faults["/3/movie/200"] = [Fault(429, {"Retry-After": "1"})]
    assert collect(tmdb, tmp_path) == 0
    out = tmp_path / "media"
    plots = {item.id: item.source for item in read_plots(out / "plots.tsv").items}
    assert plots == {"1": "Toy Tale: Led by a cowboy, toys live happily until a spaceman arrives.",
                     "2": '"Weird" Tales: A "quoted" story.', "4": "No Videos: Nothing to watch."}
    assert not read_plots(out / "plots.tsv").warnings  # one line per plot: nothing to say about it
    posters = read_links(out / "poster_links.tsv")
    assert [(i.id, i.source) for i in posters.items] == [("1", "https://image.tmdb.org/t/p/original/toy.jpg"),
                                                         ("2", "https://image.tmdb.org/t/p/original/weird.png"),
                                                         ("4", "https://image.tmdb.org/t/p/original/nv.jpg")]
    trailers = read_links(out / "trailer_links.tsv")
    assert [(i.id, i.source) for i in trailers.items] == [("1", "https://www.youtube.com/watch?v=official-old"),
                                                          ("2", "https://www.youtube.com/watch?v=unofficial-a"),
                                                          ("3", "https://www.youtube.com/watch?v=teaser-only")]
    assert (out / "poster_links.tsv").read_text().splitlines()[0] == "movie_id\tposter_link"
    assert (out / "trailer_links.tsv").read_text().splitlines()[0] == "movie_id\ttrailer_link"
    logged = log_of(out)
    assert logged["3"] == "warning TMDB movie 300 has no overview, no poster"
    assert logged["4"] == "warning TMDB movie 400 has no YouTube trailer or teaser"
    assert logged["5"] == "skipped no TMDB id in links.csv" and "invalid id" in logged["../7"]
    assert logged["6"] == "failed TMDB has no movie 999 (HTTP 404)"
    assert "collect_links: 4 done, 0 already done, 1 failed, 2 skipped" in capsys.readouterr().out
    assert all(query["language"] == ["en-US"] and query["api_key"] == ["test-key"]
               for _, _, query in tmdb.requests)
    assert "test-key" not in (out / "log_collect_links.txt").read_text()


def test_a_rerun_asks_only_for_movies_without_an_answer_and_refresh_asks_again(tmdb, tmp_path, capsys):
    assert collect(tmdb, tmp_path) == 0
    first = {name: (tmp_path / "media" / name).read_bytes()
             for name in ("plots.tsv", "poster_links.tsv", "trailer_links.tsv")}
    asked = len(tmdb.requests)
    assert asked == 5
    assert collect(tmdb, tmp_path) == 0
    assert [path for _, path, _ in tmdb.requests[asked:]] == ["/3/movie/999"]  # only the one without an answer
    assert {name: (tmp_path / "media" / name).read_bytes() for name in first} == first
    assert "0 done, 4 already done, 1 failed" in capsys.readouterr().out
    cache = tmp_path / "media" / "tmdb_cache"
    (cache / "1.json").write_text('{"tmdb_id": "100", "lang')  # cut short: asked again
    (cache / "4.json").unlink()
    tmdb.faults["/3/movie/400"] = [Fault(200, {"Content-Type": "text/html"}, b"<html>busy</html>")]
    asked = len(tmdb.requests)
    assert collect(tmdb, tmp_path) == 0
    assert sorted(path for _, path, _ in tmdb.requests[asked:]) == ["/3/movie/100", "/3/movie/400", "/3/movie/999"]
    assert log_of(tmp_path / "media")["4"] == "failed TMDB movie 400: TMDB's answer is not a JSON object"
    assert "No Videos" not in (tmp_path / "media" / "plots.tsv").read_text()
    asked = len(tmdb.requests)
    tmdb.tmdb[400]["details"]["overview"] = "An edited overview."
    assert collect(tmdb, tmp_path, "--refresh", "--language", "fr-FR") == 0
    assert len(tmdb.requests) == asked + 5
    assert all(query["language"] == ["fr-FR"] for _, _, query in tmdb.requests[asked:])
    assert "No Videos: An edited overview." in (tmp_path / "media" / "plots.tsv").read_text()


def test_the_key_comes_from_the_environment_only(tmdb, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TMDB_API_KEY")
    assert collect(tmdb, tmp_path) == 2
    assert capsys.readouterr().err.startswith("error: set TMDB_READ_TOKEN")
    assert not (tmp_path / "media").exists()  # found before anything is written
    monkeypatch.setenv("TMDB_READ_TOKEN", "test-key")
    assert collect(tmdb, tmp_path) == 0
    assert set(tmdb.auth_headers) == {"Bearer test-key"}
    assert all("api_key" not in query for _, _, query in tmdb.requests)
    monkeypatch.setenv("TMDB_READ_TOKEN", "wrong")
    assert collect(tmdb, tmp_path, "--refresh") == 2
    error = capsys.readouterr().err
    assert error.startswith("error: TMDB refused the key") and error.count("\n") == 1


def test_a_malformed_api_url_is_a_usage_error(tmdb, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        collect(tmdb, tmp_path, "--api-url", "http://[oops/3")  # the last --api-url wins
    assert stop.value.code == 2 and "--api-url: must be an http(s) URL" in capsys.readouterr().err
    assert not (tmp_path / "media").exists()


def test_ctrl_c_stops_at_once_a_request_waiting_out_a_retry_after(tmdb, tmp_path):
    tmdb.faults["/3/movie/100"] = [Fault(429, {"Retry-After": "600"})]  # within M3L_DOWNLOAD_MAX_WAIT: waited
    links = tmp_path / "links.csv"
    links.write_text("movieId,imdbId,tmdbId\n1,0114709,100\n")
    process = subprocess.Popen([sys.executable, str(SRC / "collect_links.py"), "--movielens-links", str(links),
                                "--out", str(tmp_path / "media"), "--api-url", f"{tmdb.url}/3"], cwd=REPO,
                               env={**os.environ, "M3L_DOWNLOAD_MAX_WAIT": "600"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while tmdb.gets("/3/movie/100") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # the answer is read and the wait begun
    process.send_signal(signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=120)  # the old pool waited the whole 600 s
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.startswith("interrupted: ") and "Traceback" not in stderr
    assert "collect_links: 0 done" in stdout


def test_collected_plots_feed_extract_text_unchanged(tmdb, tmp_path, text_store):
    assert collect(tmdb, tmp_path) == 0
    features = tmp_path / "features"
    argv = ["--plots", tmp_path / "media" / "plots.tsv", "--models", "minilm", "--models-dir", text_store,
            "--output", features, "--device", "cpu"]
    assert extract_main("text", list(map(str, argv))) == 0
    assert sorted(read_vectors(features / "minilm")) == ["1", "2", "4"]


RAW_PLOTS = ["Toy Tale: Led by a cowboy,\ttoys live\r\nhappily\nuntil a spaceman\rarrives.",
             "Heat: A thief\t\tand a cop.\r\n\r\nThey meet.", "Tabs\tonly\there", "Trailing break\n"]


@pytest.mark.parametrize("model", ["all-MiniLM-L6-v2", "all-mpnet-base-v2", "clip-ViT-B-32"])
def test_tabs_and_line_breaks_written_as_spaces_leave_every_token_id_unchanged(text_store, model):
    """The three text models' own tokenizers (MiniLM's real one; mpnet and CLIP the real tokenizer classes with a
    small vocabulary: only their whitespace rules matter here, and those are the classes' code)."""
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(text_store / "sentence-transformers" / model), device="cpu",
                                  local_files_only=True)

    def ids(text: str) -> list[int]:
        return encoder.tokenize([text])["input_ids"][0].tolist()

    for raw in RAW_PLOTS:
        assert ids(one_line(raw)) == ids(raw), raw
    assert ids("spaceman arrives") != ids("spacemanarrives")  # the comparison sees a lost word boundary
