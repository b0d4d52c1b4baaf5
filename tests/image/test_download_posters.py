"""download_posters.py against a web server of our own (tests/web.py): formats, faults, kill and rerun, proxies."""

from __future__ import annotations

import io
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import pytest

from m3l.download import posters, run
from m3l.download.posters import CheckProcesses, main, partial_folder, poster_problem
from m3l.download.tmdb import main as collect_links
from m3l.media import DEFAULT_MAX_PIXELS
from tests.image.helpers import extract
from tests.image.media import bad_posters, photo
from tests.outputs import read_vectors
from tests.testlib import DATA, REPO, SRC
from tests.web import Fault, WebServer

CA_BUNDLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
FAST = {"M3L_DOWNLOAD_BACKOFF": "0.01", "M3L_DOWNLOAD_MAX_WAIT": "5", "M3L_DOWNLOAD_MIN_RATE": "1000",
        "M3L_DOWNLOAD_RATE_WINDOW": "1"}


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)


def poster_bytes(kind: str, size: tuple[int, int] = (60, 90)) -> bytes:
    buffer = io.BytesIO()
    photo().resize(size).save(buffer, kind)
    return buffer.getvalue()


def write_links(path, rows) -> str:
    path.write_text("movie_id\tposter_link\n" + "".join(f"{movie_id}\t{url}\n" for movie_id, url in rows))
    return str(path)


def download(links, out, *options) -> int:
    return main(["--links", str(links), "--out", str(out), *map(str, options)])


def log_of(out) -> dict[str, str]:
    """`<status> <reason>` of each id in the run's log (the last line of an id wins)."""
    lines = (out.parent / f"log_download_{out.name}.txt").read_text().splitlines()
    return {line.split(" ")[2]: line.split(" ", 3)[3] for line in lines}


def test_links_collected_from_tmdb_give_posters_named_by_their_bytes_that_extract_images_reads(
        tmp_path, capsys, image_store, monkeypatch):
    monkeypatch.setenv("TMDB_API_KEY", "test-key")
    kinds = {"1": "JPEG", "2": "PNG", "3": "WEBP", "4": "GIF"}
    with WebServer(key="test-key") as web:
        for movie_id, kind in kinds.items():
            web.files[f"/t/p/original/{movie_id}.png"] = poster_bytes(kind)  # the URL says png: the bytes decide
            web.tmdb[100 + int(movie_id)] = {"details": {"title": f"T{movie_id}", "overview": "O.",
                                                         "poster_path": f"/{movie_id}.png"}}
        rows = "".join(f"{movie_id},0,{100 + int(movie_id)}\n" for movie_id in kinds)
        (tmp_path / "links.csv").write_text("movieId,imdbId,tmdbId\n" + rows)
        assert collect_links(["--movielens-links", str(tmp_path / "links.csv"), "--out", str(tmp_path / "media"),
                              "--api-url", f"{web.url}/3", "--image-url", f"{web.url}/t/p/original"]) == 0
        links, out = tmp_path / "media" / "poster_links.tsv", tmp_path / "media" / "poster"
        assert download(links, out) == 0
        assert sorted(p.name for p in out.iterdir()) == ["1.jpg", "2.png", "3.webp", "4.gif"]
        assert "download_posters: 4 done, 0 already done, 0 failed, 0 skipped" in capsys.readouterr().out
        asked = len(web.requests)
        assert download(links, out) == 0  # the rerun checks the files and asks the network nothing
        assert "0 done, 4 already done" in capsys.readouterr().out
        assert len(web.requests) == asked
    features = tmp_path / "features"
    assert extract(image_store, out, features, "--models", "vit", "--device", "cpu") == 0
    assert sorted(read_vectors(features / "vit")) == sorted(kinds)
    assert " failed " not in (features / "log_vit.txt").read_text()


def test_every_failure_is_one_log_line_and_no_file(tmp_path, capsys):
    bad = {name: path.read_bytes() for name, (path, _) in bad_posters(tmp_path).items()}
    good = poster_bytes("JPEG")
    with WebServer() as web:
        cases = {  # id: (what the server does, what the log line says; None: downloaded after retries)
            "404": (lambda p: None, "HTTP 404 Not Found"),
            "long404": (lambda p: web.faults.update({p: [Fault(404, body=bytes(30_000_000))]}), "HTTP 404 Not Found"),
            "flaky": (lambda p: web.faults.update({p: [Fault(500)]}), None),
            "limited": (lambda p: web.faults.update({p: [Fault(429, {"Retry-After": "1"})]}), None),
            "silent": (lambda p: web.faults.update({p: [Fault(hang=True)] * 2}), "no answer within 0.5 s (2 attempts)"),
            "cut": (lambda p: web.faults.update({p: [Fault(cut=True)] * 2}), "connection broken after"),
            "recut": (lambda p: web.faults.update({p: [Fault(cut=True)]}), None),  # half a body, then all of it
            "trickle": (lambda p: web.faults.update({p: [Fault(trickle=True)] * 2}),
                        "below M3L_DOWNLOAD_MIN_RATE=1000 bytes/s over M3L_DOWNLOAD_RATE_WINDOW=1 s (2 attempts)"),
            "truncated": (lambda p: web.files.update({p: bad["truncated"]}), "truncated or corrupt JPEG"),
            "html": (lambda p: web.files.update({p: b"<!DOCTYPE html><html>Sorry</html>"}),
                     "not a JPEG, PNG, WebP or GIF image: starts with <!DOCTYPE html>"),
            "huge": (lambda p: web.files.update({p: good + bytes(60_000)}), "over the size cap of 50,000"),
            "stream": (lambda p: (web.files.update({p: good + bytes(20_000_000)}), web.unsized.add(p)),
                       "body over the size cap of 50,000 bytes (--max-bytes): stopped there"),
            "bomb": (lambda p: web.files.update({p: bad["bomb"]}), "over the decompression-bomb limit"),
            "loop": (lambda p: web.redirects.update({p: p}), "more than 5 redirects"),
            "tofile": (lambda p: web.redirects.update({p: "file:///etc/passwd"}),
                       "refused file:///etc/passwd: http and https only"),
        }
        rows = []
        for movie_id, (arrange, _) in cases.items():
            path = f"/p/{movie_id}.jpg"
            if movie_id != "404":
                web.files[path] = good
            arrange(path)
            rows.append((movie_id, web.url + path))
        rows += [("../up", f"{web.url}/p/flaky.jpg"), ("a b", f"{web.url}/p/flaky.jpg"), ("ftp", "ftp://h/x.jpg"),
                 ("flaky", f"{web.url}/p/404.jpg")]
        out = tmp_path / "poster"
        links = write_links(tmp_path / "links.tsv", rows)
        assert download(links, out, "--timeout", "0.5", "--attempts", "2", "--max-bytes", "50000",
                        "--connections", "4") == 0
        assert web.gets("/p/404.jpg") == 1 and web.gets("/p/flaky.jpg") == 2 and web.gets("/p/limited.jpg") == 2
        assert web.sent["/p/stream.jpg"] < 20_000_000  # stopped early, not downloaded whole
        assert web.sent["/p/long404.jpg"] < 30_000_000  # an error's page is not read
    assert sorted(p.name for p in out.iterdir()) == ["flaky.jpg", "limited.jpg", "recut.jpg"]
    assert (out / "recut.jpg").read_bytes() == good  # the second attempt's bytes only
    logged = log_of(out)
    for movie_id, (_, reason) in cases.items():
        if reason is None:
            assert movie_id not in logged or movie_id == "flaky"
        else:
            assert logged[movie_id].startswith("failed ") and reason in logged[movie_id], (movie_id, logged[movie_id])
    assert logged["flaky"].startswith("skipped duplicate id")
    assert "invalid id" in logged["../up"] and "invalid id" in logged["a\\x20b"]
    assert logged["ftp"] == "skipped not an http(s) URL: ftp://h/x.jpg"
    assert "3 done, 0 already done, 12 failed, 4 skipped" in capsys.readouterr().out


def test_a_download_killed_midway_leaves_no_partial_poster_and_the_rerun_fetches_only_it(tmp_path):
    with WebServer() as web:
        for movie_id in ("1", "2", "3"):
            web.files[f"/p/{movie_id}.jpg"] = poster_bytes("JPEG", (400, 600))
        web.faults["/p/3.jpg"] = [Fault(cut=True, hang=True)]  # half of it, then nothing
        out = tmp_path / "poster"
        out.mkdir()
        (out / "4.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # a broken poster of an earlier run
        web.files["/p/4.jpg"] = poster_bytes("JPEG")
        links = write_links(tmp_path / "links.tsv", [(i, f"{web.url}/p/{i}.jpg") for i in "1234"])
        command = [sys.executable, str(SRC / "download_posters.py"), "--links", links, "--out", str(out),
                   "--connections", "1"]
        process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **FAST}, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while web.gets("/p/3.jpg") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the first half of 3.jpg is written to its partial file
        helpers = descendants(process.pid)  # the check processes and the server that forks them
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert helpers and wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in helpers)), \
            "a check process outlived the killed run"
        assert sorted(p.name for p in out.iterdir()) == [".partial", "1.jpg", "2.jpg", "4.png"]
        assert [p.name.split(".")[0] for p in (out / ".partial").iterdir()] == ["3"]
        rerun = subprocess.run(command, cwd=REPO, env={**os.environ, **FAST}, capture_output=True, text=True,
                               timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert "2 done, 2 already done, 0 failed" in rerun.stdout
        assert [web.gets(f"/p/{i}.jpg") for i in "1234"] == [1, 1, 2, 1]
    assert sorted(p.name for p in out.iterdir()) == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]
    assert log_of(out)["4"].startswith("recompute existing 4.png: ")


def descendants(pid: int) -> list[int]:
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return children + [grandchild for child in children for grandchild in descendants(child)]


def wait_for(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_proxies_come_from_the_environment(tmp_path, monkeypatch):
    with WebServer() as web:
        web.files["/t/p/original/1.jpg"] = poster_bytes("JPEG")
        monkeypatch.setenv("HTTP_PROXY", web.url)
        monkeypatch.setenv("NO_PROXY", "")
        links = write_links(tmp_path / "links.tsv", [("1", "http://image.tmdb.invalid/t/p/original/1.jpg")])
        assert download(links, tmp_path / "poster") == 0
        assert web.proxied_hosts == ["image.tmdb.invalid"]
    assert (tmp_path / "poster" / "1.jpg").is_file()


class Socks5:
    """A SOCKS5 proxy (no authentication, CONNECT only) that sends every connection to `target`, recording
    the host and port each one asked for."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.asked = target, []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socks5h://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                client, _ = self.server.accept()
                threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client, suppress(OSError):
            methods = client.recv(2)[1]
            client.recv(methods)
            client.sendall(b"\x05\x00")
            _, command, _, kind = client.recv(4)
            assert command == 1 and kind == 3  # CONNECT to a host name: socks5h leaves the lookup to the proxy
            host = client.recv(client.recv(1)[0]).decode()
            self.asked.append((host, int.from_bytes(client.recv(2), "big")))
            with socket.create_connection(self.target) as upstream:
                client.sendall(b"\x05\x00\x00\x01" + bytes(6))
                threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
                self._pipe(client, upstream)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()


def test_a_socks_proxy_from_the_environment_carries_the_downloads(tmp_path, monkeypatch):
    with WebServer() as web:
        web.files["/t/p/original/1.jpg"] = poster_bytes("JPEG")
        proxy = Socks5(("127.0.0.1", int(web.url.rsplit(":", 1)[1])))
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        links = write_links(tmp_path / "links.tsv", [("1", "http://image.tmdb.invalid/t/p/original/1.jpg")])
        try:
            assert download(links, tmp_path / "poster") == 0
        finally:
            proxy.close()
        assert web.gets("/t/p/original/1.jpg") == 1
    assert proxy.asked == [("image.tmdb.invalid", 80)]
    assert (tmp_path / "poster" / "1.jpg").read_bytes() == web.files["/t/p/original/1.jpg"]


@pytest.mark.parametrize("case", ["missing links", "out is a file", "out under data", "limit zero"])
def test_user_mistakes_are_one_error_line_and_exit_2(tmp_path, capsys, case):
    links = write_links(tmp_path / "links.tsv", [("1", "http://127.0.0.1:9/1.jpg")])
    (tmp_path / "file").write_text("")
    argv = {"missing links": ["--links", tmp_path / "nope.tsv", "--out", tmp_path / "out"],
            "out is a file": ["--links", links, "--out", tmp_path / "file"],
            "out under data": ["--links", links, "--out", DATA / "poster"],
            "limit zero": ["--links", links, "--limit", "0"]}[case]
    if case == "limit zero":
        with pytest.raises(SystemExit) as stop:
            main(list(map(str, argv)))
        assert stop.value.code == 2
        return
    assert main(list(map(str, argv))) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1, error
    assert not (tmp_path / "out").exists()


def test_limit_and_ids_choose_the_posters_and_a_retry_after_too_long_fails_at_once(tmp_path, capsys):
    with WebServer() as web:
        for movie_id in "12345":
            web.files[f"/p/{movie_id}.jpg"] = poster_bytes("JPEG")
        web.faults["/p/5.jpg"] = [Fault(429, {"Retry-After": "3600"})]
        links = write_links(tmp_path / "links.tsv", [(i, f"{web.url}/p/{i}.jpg") for i in "12345"])
        (tmp_path / "ids.txt").write_text("2\n4\n5\n")
        out = tmp_path / "poster"
        assert download(links, out, "--limit", "2") == 0
        assert sorted(p.name for p in out.iterdir()) == ["1.jpg", "2.jpg"]
        assert download(links, out, "--ids", tmp_path / "ids.txt") == 0
        assert sorted(p.name for p in out.iterdir()) == ["1.jpg", "2.jpg", "4.jpg"]
        assert web.gets("/p/3.jpg") == 0 and web.gets("/p/5.jpg") == 1
    assert "1 done, 1 already done, 1 failed" in capsys.readouterr().out.splitlines()[-1]
    assert log_of(out)["5"].endswith("HTTP 429 Too Many Requests: the server asks to wait 3600 s, over the 5 s "
                                     "this run waits; run again later")


def test_malformed_headers_and_urls_fail_at_most_their_own_link(tmp_path, capsys):
    good = poster_bytes("JPEG")
    with WebServer() as web:
        cases = {  # id: (what the server does first, what the log line says; None: downloaded)
            "zoneless": ([Fault(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 -0000"})], None),
            "superscript": ([Fault(429, {"Retry-After": "\u00b2"})], None),
            "length": ([Fault(200, {"Content-Length": "\u00b2", "Connection": "close"}, good)], None),
            "bracket": ([Fault(302, {"Location": "http://[oops/x"})], "malformed redirect: ValueError: Invalid IPv6 URL"),
        }
        for movie_id, (faults, _) in cases.items():
            web.files[f"/p/{movie_id}.jpg"] = good
            web.faults[f"/p/{movie_id}.jpg"] = faults
        web.redirects["/p/nohost.jpg"] = "https:///x"
        cases["nohost"] = (None, "request refused: no host in https:///x")
        web.files["/p/Amélie poster.jpg"] = good  # sent quoted: /p/Am%C3%A9lie%20poster.jpg
        links = write_links(tmp_path / "links.tsv", [(i, f"{web.url}/p/{i}.jpg") for i in cases]
                            + [("spaced", f"{web.url}/p/Amélie poster.jpg")])
        out = tmp_path / "poster"
        assert download(links, out, "--attempts", "2") == 0
        assert web.gets("/p/nohost.jpg") == 1  # not retried: asking again cannot help
    assert sorted(p.name for p in out.iterdir()) == ["length.jpg", "spaced.jpg", "superscript.jpg", "zoneless.jpg"]
    logged = log_of(out)
    assert {movie_id: logged[movie_id] for movie_id in ("bracket", "nohost")} == {
        movie_id: f"failed {web.url}/p/{movie_id}.jpg: {reason}" for movie_id, (_, reason) in cases.items() if reason}


def self_signed(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1 and a server context that presents it."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def test_a_certificate_that_fails_verification_fails_its_link_at_once(tmp_path):
    _, context = self_signed(tmp_path)
    handshakes, stopping = [], threading.Event()

    def serve(server: socket.socket) -> None:
        while not stopping.is_set():
            with suppress(TimeoutError):
                connection, _ = server.accept()
                handshakes.append(connection.getpeername())
                with connection, suppress(OSError), context.wrap_socket(connection, server_side=True):
                    pass

    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.1)
        thread = threading.Thread(target=serve, args=(server,), daemon=True)
        thread.start()
        url = f"https://127.0.0.1:{server.getsockname()[1]}/1.jpg"
        out = tmp_path / "poster"
        assert download(write_links(tmp_path / "links.tsv", [("1", url)]), out, "--attempts", "2") == 0
        stopping.set()
        thread.join()
    assert len(handshakes) == 1  # not retried: the certificate stays the same
    logged = log_of(out)["1"]
    assert logged.startswith(f"failed {url}: request refused: SSL certificate ") and "self-signed" in logged, logged


@pytest.mark.parametrize("name, kind", [("REQUESTS_CA_BUNDLE", "file"), ("CURL_CA_BUNDLE", "folder")])
def test_the_ca_bundle_the_environment_names_is_trusted(tmp_path, monkeypatch, name, kind):
    cert, context = self_signed(tmp_path)
    if kind == "folder":  # OpenSSL finds a folder's certificates by their subject's hash
        subject = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", cert], check=True,
                                 capture_output=True, text=True, timeout=60).stdout.strip()
        (tmp_path / "certs").mkdir()
        (tmp_path / "certs" / f"{subject}.0").write_bytes(cert.read_bytes())
    for bundle in CA_BUNDLES:  # the machine's own may be set: the first of them wins
        monkeypatch.delenv(bundle, raising=False)
    monkeypatch.setenv(name, str(cert if kind == "file" else tmp_path / "certs"))
    with WebServer(tls=context) as web:
        web.files["/1.jpg"] = poster_bytes("JPEG")
        url = f"{web.url}/1.jpg"
        assert download(write_links(tmp_path / "links.tsv", [("1", url)]), tmp_path / "poster") == 0, log_of(
            tmp_path / "poster")
    assert (tmp_path / "poster" / "1.jpg").read_bytes() == web.files["/1.jpg"]


@pytest.mark.parametrize("name, value", [("M3L_DOWNLOAD_BACKOFF", "abc"), ("M3L_DOWNLOAD_MAX_WAIT", "-1"),
                                         ("M3L_DOWNLOAD_MIN_RATE", "1.5"), ("HTTP_PROXY", "ftp://127.0.0.1:9"),
                                         ("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem"), ("CURL_CA_BUNDLE", "/dev/null")])
def test_a_bad_setting_in_the_environment_is_one_error_line_and_exit_2(tmp_path, capsys, monkeypatch, name, value):
    for bundle in CA_BUNDLES:
        monkeypatch.delenv(bundle, raising=False)
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", "")
    links = write_links(tmp_path / "links.tsv", [("1", "http://posters.invalid/1.jpg")])
    assert download(links, tmp_path / "poster") == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and name in error, error
    assert not (tmp_path / "poster").exists()  # found before anything is written


def test_retry_after_reads_seconds_and_http_dates():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    from m3l.download.http import retry_after

    assert retry_after("7") == 7.0 and retry_after(None) is None and retry_after("soon") is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    assert 100 < retry_after(later) <= 120
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date gone by: no wait
    zoneless = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120)).replace("+0000", "-0000")
    assert 100 < retry_after(zoneless) <= 120
    assert retry_after("\u00b2") is None and retry_after("Mon, 99 Foo 2015") is None


def test_ctrl_c_stops_within_the_timeout_keeping_every_finished_poster(tmp_path):
    with WebServer() as web:
        for movie_id in "12":
            web.files[f"/p/{movie_id}.jpg"] = poster_bytes("JPEG")
        web.faults["/p/2.jpg"] = [Fault(hang=True)]
        out = tmp_path / "poster"
        links = write_links(tmp_path / "links.tsv", [(i, f"{web.url}/p/{i}.jpg") for i in "12"])
        process = subprocess.Popen([sys.executable, str(SRC / "download_posters.py"), "--links", links, "--out",
                                    str(out), "--connections", "1", "--timeout", "2"], cwd=REPO,
                                   env={**os.environ, **FAST}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        deadline = time.monotonic() + 60
        while web.gets("/p/2.jpg") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.startswith("interrupted: every file under its final name is complete") and "Traceback" not in stderr
    assert "download_posters: 1 done" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["1.jpg"]  # no .partial left behind


def _check_or_die(path, max_pixels):
    """The posters' check, except that a poster named fatal* kills the process checking it."""
    if path.name.startswith("fatal"):
        os.kill(os.getpid(), signal.SIGKILL)
    return poster_problem(path, max_pixels)


def test_a_poster_that_kills_its_check_process_fails_alone_and_the_checks_go_on(tmp_path):
    good = [tmp_path / f"{n}.jpg" for n in range(8)]
    for path in good:
        path.write_bytes(poster_bytes("JPEG"))
    fatal, broken = tmp_path / "fatal.jpg", tmp_path / "broken.jpg"
    fatal.write_bytes(poster_bytes("JPEG"))
    broken.write_bytes(poster_bytes("JPEG")[:300])
    paths = [*good[:4], fatal, *good[4:], broken]
    checks = CheckProcesses(2, DEFAULT_MAX_PIXELS, _check_or_die)
    try:
        with ThreadPoolExecutor(4) as threads:  # other checks are in flight when the process dies
            problems = dict(zip(paths, threads.map(checks.problem, paths)))
        assert checks.problem(good[0]) is None  # a new pool took over
    finally:
        checks.close()
    assert problems[fatal] == CheckProcesses.KILLED
    assert problems[broken] == poster_problem(broken, DEFAULT_MAX_PIXELS) is not None  # its own reason
    assert [problems[path] for path in good] == [None] * len(good)


def test_a_second_run_into_the_same_folder_stops_at_once_and_leaves_the_first_alone(tmp_path, capsys):
    with WebServer() as web:
        for movie_id in "12":
            web.files[f"/p/{movie_id}.jpg"] = poster_bytes("JPEG")
        web.faults["/p/1.jpg"] = [Fault(cut=True, hang=True)]  # half of it, then nothing: the first run waits
        out = tmp_path / "poster"
        links = write_links(tmp_path / "links.tsv", [(i, f"{web.url}/p/{i}.jpg") for i in "12"])
        first = subprocess.Popen([sys.executable, str(SRC / "download_posters.py"), "--links", links, "--out",
                                  str(out), "--connections", "1", "--timeout", "2"], cwd=REPO,
                                 env={**os.environ, **FAST}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert wait_for(lambda: web.gets("/p/1.jpg") == 1 and any((out / ".partial").glob("1.*")))
            assert download(links, out) == 2
            assert capsys.readouterr().err == f"error: another download is writing into {out}; wait for it to end\n"
            assert [p.name.split(".")[0] for p in (out / ".partial").iterdir()] == ["1"]  # the first run's, kept
        finally:
            first.send_signal(signal.SIGINT)
            first.communicate(timeout=60)
    assert first.returncode == 130 and not (out / ".partial").exists()


@pytest.mark.parametrize("when", ["before our open", "before our lock"])
def test_a_partial_folder_removed_by_a_run_that_ends_just_then_is_made_again(tmp_path, monkeypatch, when):
    out = tmp_path / "poster"
    removed = []

    def run_before_ends(original):
        def call(*args):
            result = original(*args)
            if not removed:  # the run before removes its .partial/ and lets go of its lock
                removed.append(True)
                (out / ".partial").rmdir()
            return result
        return call

    if when == "before our open":
        monkeypatch.setattr(posters, "real_folder", run_before_ends(posters.real_folder))
    else:
        monkeypatch.setattr(run, "lock_for_this_run", run_before_ends(run.lock_for_this_run))
    with partial_folder(out) as partial:
        (partial / "1.abc").write_bytes(b"a poster on its way")
    assert removed and sorted(p.name for p in out.iterdir()) == []
