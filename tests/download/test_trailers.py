"""download_trailers.py against a local server: yt-dlp's generic extractor fetches direct mp4 links, so the
trailer path, --first-seconds and the failure classes run for real, offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.download.media import serve, serve_dash, write_trailer
from tests.web import Fault
from tests.testlib import DATA, REPO, SRC, run_script

FAST = {"M3L_DOWNLOAD_RETRIES": "2", "M3L_DOWNLOAD_BACKOFF": "0", "M3L_DOWNLOAD_TIMEOUT": "10"}
# The decoders and extractors run in their own venvs, as a user runs them after downloading.
OTHER_VENV = {"M3L_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2",
              "PYTHONPATH": f"{SRC}{os.pathsep}{REPO}"}


def write_links(path: Path, rows: dict[str, str] | list[tuple[str, str]]) -> Path:
    rows = rows.items() if isinstance(rows, dict) else rows
    path.write_text("movie_id\ttrailer_link\n" + "".join(f"{movie_id}\t{url}\n" for movie_id, url in rows))
    return path


def download(links: Path, out: Path, *extra: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_script("download_trailers.py", "--links", links, "--out", out, "--delay", "0", *extra,
                      env={**FAST, **(env or {})}, timeout=300)


def statuses(result: subprocess.CompletedProcess) -> dict[str, str]:
    """id → status of the per-id log lines (the summary line has no tab)."""
    return {line.split("\t")[0]: line.split("\t")[1] for line in result.stdout.splitlines() if "\t" in line}


def manifest(out: Path) -> dict[str, dict]:
    return {record["movie_id"]: record for record in map(json.loads, (out / "download_manifest.jsonl").open())}


def test_trailers_land_under_final_names_with_their_catalogue_and_manifest(tmp_path, web, clips):
    urls = {"1": serve(web, "/a.mp4", clips["a"]), "2": serve(web, "/b.mp4", clips["b"])}
    links, out = write_links(tmp_path / "links.tsv", urls), tmp_path / "trailers"
    result = download(links, out)
    assert result.returncode == 0, result.stderr
    assert statuses(result) == {"1": "downloaded", "2": "downloaded"}
    assert (out / "1.mp4").read_bytes() == clips["a"].read_bytes()
    assert sorted(path.name for path in out.iterdir()) == [".partial", "1.mp4", "2.mp4", "download_manifest.jsonl",
                                                           "trailers.tsv"]
    assert [path.name for path in (out / ".partial").iterdir()] == ["lock"]
    assert (out / "trailers.tsv").read_text() == "movie_id\ttrailer_path\n1\t1.mp4\n2\t2.mp4\n"
    records = manifest(out)
    assert {movie_id: (r["url"], r["bytes"]) for movie_id, r in records.items()} == {
        "1": (urls["1"], clips["a"].stat().st_size), "2": (urls["2"], clips["b"].stat().st_size)}
    assert all(r["format_id"] and r["downloaded_at"] and r["yt_dlp"] for r in records.values())
    asked = len(web.requests)
    again = download(links, out)
    assert statuses(again) == {"1": "already downloaded", "2": "already downloaded"}
    assert len(web.requests) == asked, "a finished trailer was asked for again"


def test_failures_are_classed_gone_network_or_blocked_and_only_gone_is_remembered(tmp_path, web, clips):
    urls = {"10": serve(web, "/removed.mp4"),  # 404
            "11": serve(web, "/flaky.mp4", clips["a"]), "12": serve(web, "/down.mp4", clips["a"]),
            "13": serve(web, "/busy.mp4", clips["a"])}
    web.faults = {"/flaky.mp4": [Fault(500)], "/down.mp4": [Fault(503)] * 100, "/busy.mp4": [Fault(429)]}
    links, out = write_links(tmp_path / "links.tsv", urls), tmp_path / "trailers"
    first = download(links, out)
    assert first.returncode == 0, first.stderr
    assert statuses(first) == {"10": "gone", "11": "downloaded", "12": "network", "13": "blocked"}
    assert web.gets("/down.mp4") == 3  # M3L_DOWNLOAD_RETRIES=2: three attempts
    assert "3 failed, 0 skipped" in first.stdout and "not downloaded: 1 gone, 1 blocked, 1 network;" in first.stdout
    second = download(links, out)
    assert statuses(second) == {"10": "gone", "11": "already downloaded", "12": "network", "13": "downloaded"}
    assert "found by an earlier run" in second.stdout
    assert web.gets("/removed.mp4") == 1, "a gone trailer was asked for again"
    assert web.gets("/down.mp4") == 6, "a network failure was not retried by the rerun"
    third = download(links, out, "--retry-failed")
    assert statuses(third)["10"] == "gone" and web.gets("/removed.mp4") == 2


def test_a_gone_trailer_is_asked_for_again_when_its_link_changed(tmp_path, web, clips):
    out = tmp_path / "trailers"
    out.mkdir()
    removed = serve(web, "/removed.mp4")
    (out / "gone.jsonl").write_text("".join(json.dumps({"movie_id": movie_id, "url": removed, "reason": "HTTP Error 404"})
                                            + "\n" for movie_id in ("1", "2")))
    links = write_links(tmp_path / "links.tsv", {"1": removed, "2": serve(web, "/new.mp4", clips["a"])})
    result = download(links, out)
    assert statuses(result) == {"1": "gone", "2": "downloaded"}, result.stdout
    assert web.gets("/removed.mp4") == 0
    assert [json.loads(line)["movie_id"] for line in (out / "gone.jsonl").read_text().splitlines()] == ["1"]


@pytest.mark.parametrize("planted", ["1.mp4", "download_manifest.jsonl"])
def test_a_write_that_fails_stops_the_run_with_one_error_line(tmp_path, web, clips, planted):
    out = tmp_path / "trailers"
    (out / planted).mkdir(parents=True)  # a folder where a file goes: the write fails
    result = download(write_links(tmp_path / "links.tsv", {"1": serve(web, "/a.mp4", clips["a"])}), out)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: cannot write {out / planted}") and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_blocked_in_a_row_stops_the_run_with_one_line(tmp_path, web, clips):
    urls = {str(i): serve(web, f"/{i}.mp4", clips["a"]) for i in range(1, 5)}
    web.faults = {f"/{i}.mp4": [Fault(429, {"Retry-After": "0"})] * 5 for i in range(1, 4)}
    result = download(write_links(tmp_path / "links.tsv", urls), tmp_path / "trailers")
    assert result.returncode == 3
    assert statuses(result) == {"1": "blocked", "2": "blocked", "3": "blocked"}
    assert not web.gets("/4.mp4")
    assert len(result.stderr.splitlines()) == 1 and "--cookies" in result.stderr, result.stderr


@pytest.mark.parametrize("message, kind", [
    ("ERROR: [youtube] abc: Sign in to confirm you\u2019re not a bot. Use --cookies", "blocked"),
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access", "gone"),
    ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", "gone"),
    ("ERROR: [youtube] abc: Requested format is not available", "failed"),
])
def test_youtube_messages_are_classed(message, kind):
    from yt_dlp.utils import DownloadError

    from m3l.download.trailers import failure_class

    assert failure_class(DownloadError(message)) == kind


@pytest.mark.parametrize("source", ["direct", "dash"])
def test_kill_mid_download_keeps_no_partial_trailer_and_the_rerun_resumes(tmp_path, web, clips, source):
    big = write_trailer(tmp_path / "big.mp4", 40)
    if source == "direct":
        url, slow, part = serve(web, "/big.mp4", big), "/big.mp4", "2.mp4.part"
    else:  # video and audio apart, merged by yt-dlp: killed with the video in 2.f137.mp4, the audio half-way
        url, slow, part = serve_dash(web, "/dash", big), "/dash/audio.m4a", "2.f140.m4a.part"
    urls = {"1": serve(web, "/a.mp4", clips["a"]), "2": url}
    web.throttle[slow], web.send_buffer = 0.3, 32 * 1024  # 64 KB every 0.3 s
    links, out = write_links(tmp_path / "links.tsv", urls), tmp_path / "trailers"
    process = subprocess.Popen([sys.executable, str(SRC / "download_trailers.py"), "--links", str(links), "--out",
                                str(out), "--delay", "0"], cwd=REPO, env={**os.environ, **FAST},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    part = out / ".partial" / part
    deadline = time.monotonic() + 120
    while not (part.is_file() and part.stat().st_size > 64 * 1024):
        assert process.poll() is None and time.monotonic() < deadline, "the download ended before the kill"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert sorted(path.name for path in out.iterdir()) == [".partial", "1.mp4", "download_manifest.jsonl"]
    kept = part.stat().st_size
    web.throttle.clear()
    asked_for_1 = web.gets("/a.mp4")
    result = download(links, out)
    assert statuses(result) == {"1": "already downloaded", "2": "downloaded"}
    assert web.gets("/a.mp4") == asked_for_1, "a finished trailer was downloaded twice"
    resumed = [header for path, header in web.ranges if path == slow][-1]
    assert resumed is not None and int(resumed.removeprefix("bytes=").split("-")[0]) >= kept - 64 * 1024
    if source == "direct":
        assert (out / "2.mp4").read_bytes() == big.read_bytes()
    else:
        assert web.gets("/dash/video.mp4") == 1, "the finished video stream was downloaded again"
    assert sorted(path.name for path in (out / ".partial").iterdir()) == ["lock"]
    assert (out / "trailers.tsv").read_text() == "movie_id\ttrailer_path\n1\t1.mp4\n2\t2.mp4\n"


def test_rows_breaking_the_id_rules_are_logged_and_the_run_goes_on(tmp_path, web, clips):
    url = serve(web, "/a.mp4", clips["a"])
    rows = [("../escape", url), ("CON", url), ("a b", url), ("", url), ("7", url), ("007", url), ("7", url),
            ("8", "ftp://example.org/8.mp4"), ("9", ""), ("x" * 65, url)]
    out = tmp_path / "trailers"
    result = download(write_links(tmp_path / "links.tsv", rows), out)
    assert result.returncode == 0, result.stderr
    assert statuses(result) == {"7": "downloaded"}
    skipped = [line.split(" ", 4) for line in (tmp_path / "log_download_trailers.txt").read_text().splitlines()]
    assert [fields[3] for fields in skipped] == ["skipped"] * 9
    reasons = " ".join(fields[4] for fields in skipped)
    for reason in ("invalid id", "reserved file name", "empty id", "collides with 7", "duplicate id",
                   "not an http(s) URL", "row without a link", "longer than 64"):
        assert reason in reasons
    assert sorted(path.name for path in out.glob("*.mp4")) == ["7.mp4"]
    assert not (tmp_path / "escape.mp4").exists()


def test_limit_and_ids_choose_the_links(tmp_path, web, clips):
    urls = {str(i): serve(web, f"/{i}.mp4", clips["b"]) for i in range(1, 5)}
    links = write_links(tmp_path / "links.tsv", urls)
    (tmp_path / "ids.txt").write_text("3\n4\n")
    assert statuses(download(links, tmp_path / "a", "--limit", "1")) == {"1": "downloaded"}
    assert statuses(download(links, tmp_path / "b", "--ids", tmp_path / "ids.txt", "--limit", "1")) == {
        "3": "downloaded"}


@pytest.mark.parametrize("case, expected", [
    ("data", "under the bundled samples"),
    ("no-links", "input file not found"),
    ("out-is-a-file", "not a folder"),
    ("format-and-height", "--format and --max-height"),
    ("no-cookies", "--cookies"),
    ("negative-retries", "M3L_DOWNLOAD_RETRIES='-1'"),
    ("lock-is-a-link", "is a symbolic link"),
])
def test_user_mistakes_are_one_error_line_and_exit_2(tmp_path, case, expected):
    links = write_links(tmp_path / "links.tsv", {"1": "http://127.0.0.1:9/1.mp4"})
    out, extra, env = tmp_path / "out", [], {}
    if case == "data":
        out = DATA / "trailers" / "new"
    elif case == "no-links":
        links = tmp_path / "missing.tsv"
    elif case == "out-is-a-file":
        out.write_text("")
    elif case == "format-and-height":
        extra = ["--format", "best", "--max-height", "720"]
    elif case == "no-cookies":
        extra = ["--cookies", tmp_path / "cookies.txt"]
    elif case == "negative-retries":
        env = {"M3L_DOWNLOAD_RETRIES": "-1"}
    else:
        (out / ".partial").mkdir(parents=True)
        (out / ".partial" / "lock").symlink_to(tmp_path / "elsewhere")
    result = download(links, out, *extra, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (DATA / "trailers" / "new").exists() and not (tmp_path / "elsewhere").exists()
    if case in ("format-and-height", "no-cookies", "negative-retries"):  # found before anything is written
        assert not out.exists()


@pytest.mark.parametrize("extra", [[], ["--first-seconds", "31"]])
def test_proxy_carries_every_request(tmp_path, web, clips, extra):
    serve(web, "/a.mp4", clips["a"])
    links = write_links(tmp_path / "links.tsv", {"1": "http://trailers.invalid/a.mp4"})  # resolvable by no one
    result = download(links, tmp_path / "trailers", "--proxy", web.url, *extra)
    assert statuses(result) == {"1": "downloaded"}, result.stdout
    assert {host.removesuffix(":80") for host in web.proxied_hosts} == {"trailers.invalid"}


def test_run_outside_the_download_venv_says_how_to_get_it(tmp_path):
    links = write_links(tmp_path / "links.tsv", {"1": "http://127.0.0.1:9/1.mp4"})
    result = subprocess.run([str(REPO / ".venvs" / "video" / "bin" / "python"), str(SRC / "download_trailers.py"),
                             "--links", str(links), "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={**os.environ, **OTHER_VENV})
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "lacks yt_dlp, imageio_ffmpeg" in result.stderr and "make setup-download" in result.stderr


def test_a_torn_manifest_line_is_dropped_and_later_records_stay_readable(tmp_path):
    from m3l.download.trailers import Ledger

    path = tmp_path / "download_manifest.jsonl"
    path.write_text('{"movie_id": "1", "bytes": 5}\n{"movie_id": "2", "by')
    ledger = Ledger(path)
    ledger.add({"movie_id": "3", "bytes": 7})
    assert Ledger(path).records == {"1": {"movie_id": "1", "bytes": 5}, "3": {"movie_id": "3", "bytes": 7}}


def test_a_file_cut_inside_a_large_box_size_ends_the_count(tmp_path):
    from m3l.download.trailers import media_bytes

    path = tmp_path / "cut.mp4"
    path.write_bytes(b"\x00\x00\x00\x10mdat" + bytes(8) + b"\x00\x00\x00\x01mdat\x00\x00\x00")
    assert media_bytes(path) == 8


def decoded(*paths: Path) -> dict[str, dict]:
    """What the recipes read from each file, decoded by m3l's own decoders in the video venv."""
    result = subprocess.run([str(REPO / ".venvs" / "video" / "bin" / "python"), "-m", "tests.download.decoded",
                             *map(str, paths)], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, **OTHER_VENV})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_first_seconds_keeps_exactly_what_the_recipes_read(tmp_path, web):
    sources = {"plain": write_trailer(tmp_path / "plain.mp4", 40),
               "shifted": write_trailer(tmp_path / "shifted.mp4", 40, start=1.5),  # first timestamp 1.5 s
               "late_audio": write_trailer(tmp_path / "late_audio.mp4", 40, audio_delay=0.7)}  # after the video
    urls = {name: serve(web, f"/{name}.mp4", path) for name, path in sources.items()}
    # video and audio apart, as YouTube serves them, merged by yt-dlp; timestamps from 1.5 s, audio later
    urls["dash"] = serve_dash(web, "/dash", write_trailer(tmp_path / "dash.mp4", 40, start=1.5, audio_delay=0.3))
    links = write_links(tmp_path / "links.tsv", urls)
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert statuses(download(links, full)) == dict.fromkeys(urls, "downloaded")
    result = download(links, cut, "--first-seconds", "31")
    assert statuses(result) == dict.fromkeys(urls, "downloaded"), result.stdout + result.stderr
    records = manifest(cut)
    assert all(record["first_seconds"] == 31 for record in records.values())
    assert {key: records["dash"][key] for key in ("format_id", "resolution", "vcodec", "acodec")} == {
        "format_id": "137+140", "resolution": "64x48", "vcodec": "avc1.64000a", "acodec": "mp4a.40.2"}
    assert [path.name for path in (full / ".partial").iterdir()] == ["lock"]  # the merged streams are gone
    digests = decoded(*(folder / f"{name}.mp4" for name in urls for folder in (full, cut)))
    for name in urls:
        whole, head = digests[str(full / f"{name}.mp4")], digests[str(cut / f"{name}.mp4")]
        assert head == whole, name
        assert whole["samples"] == 480_000 and len(whole["frames"]) > 700, name
        assert (cut / f"{name}.mp4").stat().st_size < 0.85 * (full / f"{name}.mp4").stat().st_size
    first_pts = digests[str(cut / "shifted.mp4")]["frames"][0][0]
    assert first_pts > 0, "the cut shifted the timestamps of a trailer starting after 0"


def test_first_seconds_saves_network_bytes_when_the_server_answers_range_requests(tmp_path, web):
    source = write_trailer(tmp_path / "long.mp4", 150, size="32x24", fps=10)
    links = write_links(tmp_path / "links.tsv", {"1": serve(web, "/long.mp4", source)})
    web.send_buffer = 32 * 1024
    assert download(links, tmp_path / "full").returncode == 0
    whole = web.sent.pop("/long.mp4")
    assert statuses(download(links, tmp_path / "cut", "--first-seconds", "31")) == {"1": "downloaded"}
    assert web.sent["/long.mp4"] < 0.5 * whole


@pytest.mark.parametrize("server_kind", ["ignores Range", "Python's http.server"])
def test_first_seconds_from_a_server_without_range_requests_fails_clearly(tmp_path, web, server_kind):
    source = write_trailer(tmp_path / "long.mp4", 40)  # its index at the end, past FFmpeg's read buffer
    if server_kind == "ignores Range":
        url = serve(web, "/long.mp4", source)
        web.no_ranges.add("/long.mp4")
    else:
        stdlib = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
        threading.Thread(target=stdlib.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{stdlib.server_address[1]}/long.mp4"
    out = tmp_path / "trailers"
    result = download(write_links(tmp_path / "links.tsv", {"1": url}), out, "--first-seconds", "31")
    assert statuses(result) == {"1": "failed"}
    assert "without --first-seconds" in result.stdout and not (out / "1.mp4").exists()
    assert sorted(path.name for path in (out / ".partial").iterdir()) == ["lock"]


def build(venv: str, root: Path, builder: str) -> Path:
    result = subprocess.run([str(REPO / ".venvs" / venv / "bin" / "python"), "-m", "tests.build_store", str(root),
                             builder], cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, **OTHER_VENV})
    assert result.returncode == 0, result.stderr
    return root


@pytest.mark.parametrize("venv, script, models, folder, builder", [
    ("audio", "extract_audio.py", "vggish", "audio_vggish", "tests.audio.stores:add_vggish"),
    ("video", "extract_video.py", "r2p1d", "r2p1d", "tests.video.stores:add_r2p1d"),
])
def test_the_extractors_read_the_downloaded_folder_unchanged(tmp_path, web, clips, venv, script, models, folder,
                                                             builder):
    links = write_links(tmp_path / "links.tsv", {"1": serve(web, "/a.mp4", clips["a"]),
                                                 "2": serve(web, "/b.mp4", clips["b"])})
    out = tmp_path / "trailers"
    assert download(links, out, "--first-seconds", "31").returncode == 0
    store = build(venv, tmp_path / "models", builder)
    result = subprocess.run([str(REPO / ".venvs" / venv / "bin" / "python"), str(SRC / script), "--trailers",
                             str(out / "trailers.tsv"), "--models", models, "--models-dir", str(store), "--output",
                             str(tmp_path / "features"), "--device", "cpu", "--workers", "0"],
                            cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, **OTHER_VENV})
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "features" / folder).glob("*.json")) == ["1.json", "2.json"]
