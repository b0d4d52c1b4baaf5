"""One HTTP(S) GET with what a bulk download needs, on libcurl (pycurl): a handle per thread, connections kept alive.

- http and https only: a link or a redirect to any other scheme (`file:`, `ftp:`) is refused; a
  space or an accent in a link is quoted, as requests does;
- a per-request timeout (connecting, and each wait for data), retries with exponential backoff
  and jitter on timeouts, dropped connections and 5xx answers, the server's Retry-After on 429
  and 503 (a wait over `max_wait` fails the link instead: run again later); a malformed URL or
  redirect, or a refused certificate, fails the link at once;
- a size cap checked against Content-Length first and while reading, so a body over it
  is never downloaded whole; a body trickling in slower than the model store's minimum rate
  (M3L_DOWNLOAD_MIN_RATE over M3L_DOWNLOAD_RATE_WINDOW) is dropped and retried;
- proxies from the environment (http_proxy, https_proxy, all_proxy, no_proxy, either case, the
  lowercase name first; http, https and SOCKS proxies) and its CA bundle (REQUESTS_CA_BUNDLE,
  CURL_CA_BUNDLE, else certifi's), read when the Fetcher is made; ~/.netrc is not read.

libcurl rather than `requests`: a poster's GET takes a third less of the downloading process's Python
time (0.6 ms of CPU time less, on cores the checks need: docs/media.md, Throughput). Its callbacks must
not raise: a failure found in one is kept on the `_Transfer` and the callback stops the transfer.

Bounds for tests and slow networks: M3L_DOWNLOAD_BACKOFF (first backoff, seconds) and
M3L_DOWNLOAD_MAX_WAIT (longest wait before a retry, seconds), read when FetchOptions is made:
a bad value is a UserError then, as one of the minimum rate's.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import BinaryIO
from urllib.parse import quote, urljoin, urlsplit

import certifi
import pycurl

from m3l.catalog import printable
from m3l.download.run import env_number
from m3l.errors import UserError
from m3l.model_store import minimum_rate

SCHEMES = ("http", "https")
PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
REDIRECTS = (301, 302, 303, 307, 308)
# what asking again cannot change: the link, the certificate, or what this libcurl can do
REFUSED = (pycurl.E_URL_MALFORMAT, pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_PEER_FAILED_VERIFICATION,
           pycurl.E_SSL_CACERT_BADFILE, pycurl.E_SSL_CERTPROBLEM, pycurl.E_SSL_ISSUER_ERROR,
           pycurl.E_SSL_PINNEDPUBKEYNOTMATCH)
URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # what stays as it is when a URL is quoted for libcurl, as requests does
BUFFER = 1 << 20  # libcurl's receive buffer: fewer, larger reads (it still hands the body over in 16 KB pieces)


@dataclass(frozen=True)
class FetchOptions:
    timeout: float = 30.0
    max_bytes: int = 20_000_000
    attempts: int = 4
    max_redirects: int = 5
    backoff: float = field(default_factory=lambda: env_number("M3L_DOWNLOAD_BACKOFF", 1.0))
    max_wait: float = field(default_factory=lambda: env_number("M3L_DOWNLOAD_MAX_WAIT", 120.0))
    min_rate: tuple[int, int] = field(default_factory=minimum_rate)  # bytes/s over a window of seconds


class FetchError(Exception):
    """A link that gave no body; the message is the reason the log shows, `status` the HTTP status if any."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class _Retry(Exception):
    """A failure worth another attempt, after `wait` seconds when the server said so."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date), None when absent or unreadable."""
    text = (value or "").strip()
    if _whole(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # `-0000`, an unknown zone or none: UTC, as HTTP dates are
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None


def _whole(text: str) -> bool:
    """Whether a header value is digits 0-9 only (`str.isdigit` takes `²` too, which int() refuses)."""
    return text.isascii() and text.isdecimal()


def environment_proxies() -> dict[str, str]:
    """The proxy for each scheme (`all` for any) the environment sets, as curl and requests read it."""
    proxies = {}
    for scheme in ("http", "https", "all"):
        name = next((name for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY") if os.environ.get(name)), None)
        if name is None:
            continue
        proxy = os.environ[name].strip()
        proxy = proxy if "://" in proxy else f"http://{proxy}"
        if not proxy.isascii() or urlsplit(proxy).scheme.lower() not in PROXY_SCHEMES:
            raise UserError(f"{name}={printable(proxy)}: a proxy must be one of {', '.join(PROXY_SCHEMES)}")
        proxies[scheme] = proxy
    return proxies


def environment_ca_bundle() -> tuple[int, str]:
    """libcurl's option and the path of the CA certificates https links are checked against: the file or
    folder REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names (as requests reads them), else certifi's bundle.
    Anything else there (a missing path, a FIFO libcurl would wait on forever) is a UserError."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if path := os.environ.get(name):
            if os.path.isfile(path):
                return pycurl.CAINFO, path
            if os.path.isdir(path):
                return pycurl.CAPATH, path
            raise UserError(f"{name}={printable(path)}: not a CA bundle file or a folder of certificates")
    return pycurl.CAINFO, certifi.where()


class _Transfer:
    """One GET's response as libcurl's callbacks see it: the status and headers of the last response
    (a 1xx or a proxy's answer comes first), and the body, into `sink` when it is a 200's."""

    def __init__(self, fetcher: Fetcher, sink: BinaryIO) -> None:
        self.sink = sink
        self.options = fetcher.options
        self.stopping = fetcher.stopping
        self.status, self.reason, self.headers = 0, "", {}
        self.in_body = False
        self.size = 0
        self.failure: Exception | None = None
        self.received = 0  # bytes libcurl had received at the last progress call
        self.last_data = self.window_start = time.monotonic()
        self.window_from = 0  # `size` when the rate window started

    def header(self, line: bytes) -> int | None:
        self.last_data = time.monotonic()
        text = line.decode("latin-1").strip()
        if text.startswith("HTTP/"):
            _, code, reason = (text.split(" ", 2) + ["", ""])[:3]
            self.status = int(code) if _whole(code) else 0
            self.reason, self.headers, self.in_body = reason or _phrase(self.status), {}, False
        elif ":" in text:
            name, _, value = text.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        elif not text and self.status == 200:  # the end of a 200's headers: its body comes next
            declared, cap = self.headers.get("content-length", ""), self.options.max_bytes
            if _whole(declared) and len(declared) < 20 and int(declared) > cap:  # longer: libcurl refuses it
                return self._stop(FetchError(f"body of {int(declared):,} bytes is over the size cap of {cap:,} "
                                             "(--max-bytes)"), 0)
            self.in_body, self.window_start = True, self.last_data
        return None

    def body(self, chunk: bytes) -> int | None:
        if not self.in_body:  # a redirect's or an error's page: never read, however long (`_perform` knows why)
            return 0
        self.size += len(chunk)
        if self.size > self.options.max_bytes:
            return self._stop(FetchError(f"body over the size cap of {self.options.max_bytes:,} bytes "
                                         "(--max-bytes): stopped there"), 0)
        try:
            self.sink.write(chunk)
        except OSError as error:
            return self._stop(error, 0)
        return None

    def progress(self, _total: int, received: int, _upload_total: int, _uploaded: int) -> int:
        """Called by libcurl as data comes, and about once a second when none does: the run's stop, the
        timeout on each wait for data and the minimum rate are checked here, not for each piece of the body."""
        now = time.monotonic()
        if received != self.received:
            self.received, self.last_data = received, now
        if self.stopping.is_set():
            return self._stop(FetchError("run stopped"), 1)
        if now - self.last_data > self.options.timeout:
            return self._stop(_Retry(_no_answer(self.options.timeout)), 1)
        rate, window = self.options.min_rate
        if self.in_body and (elapsed := now - self.window_start) >= window:
            if (got := self.size - self.window_from) < rate * elapsed:
                return self._stop(_Retry(f"stalled: {got:,} bytes in {elapsed:.0f} s, below M3L_DOWNLOAD_MIN_RATE="
                                         f"{rate} bytes/s over M3L_DOWNLOAD_RATE_WINDOW={window} s"), 1)
            self.window_start, self.window_from = now, self.size
        return 0

    def _stop(self, failure: Exception, stop: int) -> int:
        """`stop`, the value that makes libcurl end the transfer, once `failure` is kept for after it."""
        self.failure = failure
        return stop


def _no_answer(timeout: float) -> str:
    return f"no answer within {timeout:g} s"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class Fetcher:
    """GETs URLs into files, from any number of threads: each thread keeps its own handle and connections."""

    def __init__(self, options: FetchOptions, stopping: threading.Event | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.options = options
        self.stopping = stopping or threading.Event()
        self._headers = [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.proxies = environment_proxies()
        self.no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
        self.ca_option, self.ca_bundle = environment_ca_bundle()
        self._local = threading.local()

    def _handle(self) -> pycurl.Curl:
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = self._local.handle = pycurl.Curl()
            for option, value in ((pycurl.NOSIGNAL, 1), (pycurl.BUFFERSIZE, BUFFER), (pycurl.NOPROGRESS, 0),
                                  (pycurl.CONNECTTIMEOUT_MS, max(1, round(self.options.timeout * 1000))),
                                  (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
                                  (pycurl.HTTPHEADER, self._headers), (pycurl.USERAGENT, "m3l-download"),
                                  (pycurl.NOPROXY, self.no_proxy.encode()),
                                  (self.ca_option, os.fsencode(self.ca_bundle))):
                handle.setopt(option, value)
        return handle

    def get(self, url: str, sink: BinaryIO) -> int:
        """Write the body of `url` into `sink` (emptied before each attempt); its size. FetchError says why not.
        The body comes in pieces of 16 KB: a sink with a larger buffer makes fewer writes."""
        options = self.options
        for attempt in range(1, options.attempts + 1):
            try:
                return self._attempt(url, sink)
            except _Retry as retry:
                if retry.wait is not None and retry.wait > options.max_wait:
                    raise FetchError(f"{retry}: the server asks to wait {retry.wait:.0f} s, over the "
                                     f"{options.max_wait:.0f} s this run waits; run again later") from None
                if attempt == options.attempts:
                    raise FetchError(f"{retry} ({attempt} attempts)") from None
                backoff = options.backoff * 2 ** (attempt - 1) * (0.5 + random.random())
                if self.stopping.wait(min(backoff if retry.wait is None else retry.wait, options.max_wait)):
                    raise FetchError("run stopped") from None
        raise AssertionError("unreachable")

    def _attempt(self, url: str, sink: BinaryIO) -> int:
        if sink.tell():  # an earlier attempt's bytes (truncating an empty file would make ext4 flush it on close)
            sink.seek(0)
            sink.truncate()
        for _ in range(self.options.max_redirects + 1):
            transfer = self._perform(url, sink)
            if transfer.status in REDIRECTS and "location" in transfer.headers:
                try:
                    url = urljoin(url, transfer.headers["location"])
                except ValueError as error:
                    raise FetchError(f"malformed redirect: {type(error).__name__}: {error}") from None
                continue
            _check_status(transfer)
            return transfer.size
        raise FetchError(f"more than {self.options.max_redirects} redirects")

    def _perform(self, url: str, sink: BinaryIO) -> _Transfer:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise FetchError(f"refused {printable(url)}: http and https only")
        if not parts.hostname:  # libcurl would take `https:///x` for host `x`
            raise FetchError(f"request refused: no host in {printable(url)}")
        handle, transfer = self._handle(), _Transfer(self, sink)
        handle.setopt(pycurl.URL, quote(url, safe=URL_SAFE))  # a space or an accent in a link, say
        handle.setopt(pycurl.PROXY, self.proxies.get(scheme) or self.proxies.get("all") or "")
        handle.setopt(pycurl.HEADERFUNCTION, transfer.header)
        handle.setopt(pycurl.WRITEFUNCTION, transfer.body)
        handle.setopt(pycurl.XFERINFOFUNCTION, transfer.progress)
        try:
            handle.perform()
        except pycurl.error as error:
            if transfer.failure is not None:
                raise transfer.failure from None
            if error.args[0] == pycurl.E_WRITE_ERROR:  # `body` stopped at a page not kept: its status answers
                return transfer
            raise _failure(*error.args, transfer.size, self.options.timeout) from None
        return transfer


def _check_status(transfer: _Transfer) -> None:
    status = f"HTTP {transfer.status} {transfer.reason}".strip()
    if transfer.status in (429, 503):
        raise _Retry(status, retry_after(transfer.headers.get("retry-after")))
    if transfer.status >= 500 or transfer.status == 408:
        raise _Retry(status)
    if transfer.status != 200:
        raise FetchError(status, transfer.status)


def _failure(code: int, message: str, received: int, timeout: float) -> Exception:
    """What libcurl's error `code` means for the link: a retry, unless asking again cannot help."""
    message = printable(message)
    if code == pycurl.E_OPERATION_TIMEDOUT:  # connecting
        return _Retry(_no_answer(timeout))
    if code in REFUSED:
        return FetchError(f"request refused: {message}")
    if received:
        return _Retry(f"connection broken after {received:,} bytes: {message}")
    return _Retry(f"connection failed: {message}")
