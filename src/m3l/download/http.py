"""One HTTP(S) GET with what a bulk download needs, on `requests` (urllib3's pooled, kept-alive connections).

- http and https only: a link or a redirect to any other scheme (`file:`, `ftp:`) is refused;
- a per-request timeout (connecting, and each wait for data), retries with exponential backoff
  and jitter on timeouts, dropped connections and 5xx answers, the server's Retry-After on 429
  and 503 (a wait over `max_wait` fails the link instead: run again later); a malformed URL or
  redirect, or a refused certificate, fails the link at once;
- a size cap checked against Content-Length first and while reading, so a body over it
  is never downloaded whole; a body trickling in slower than the model store's minimum rate
  (M3L_DOWNLOAD_MIN_RATE over M3L_DOWNLOAD_RATE_WINDOW) is dropped and retried;
- proxies from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) and its CA bundle
  (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), as requests reads them, looked up once per scheme and host
  (requests itself would read the whole environment twice for every request); ~/.netrc is not read.

Bounds for tests and slow networks: M3L_DOWNLOAD_BACKOFF (first backoff, seconds) and
M3L_DOWNLOAD_MAX_WAIT (longest wait before a retry, seconds), read when FetchOptions is made:
a bad value is a UserError then, as one of the minimum rate's.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from m3l.catalog import printable
from m3l.download.run import env_number
from m3l.errors import UserError
from m3l.model_store import minimum_rate

SCHEMES = ("http", "https")
CHUNK = 1 << 20  # the most one read takes: each returns what has arrived, often less


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


def _innermost(error: BaseException) -> BaseException:
    while error.__cause__ or error.__context__:
        error = error.__cause__ or error.__context__
    return error


def _why(error: BaseException) -> str:
    """The innermost cause of a requests error, in one short line (not its wrapper's pool and URL dump)."""
    error = _innermost(error)
    name, text = type(error).__name__, str(error)
    return printable(text if text.startswith(name) else f"{name}: {text}" if text else name)


class Fetcher:
    """GETs URLs into files, from any number of threads: each thread keeps its own session and connections."""

    def __init__(self, options: FetchOptions, stopping: threading.Event | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.options = options
        self.stopping = stopping or threading.Event()
        self.headers = headers or {}
        self._local = threading.local()
        self._environment = requests.Session()  # reads the environment's settings, sends nothing
        self._settings: dict[tuple[str, str], dict] = {}

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False  # the environment's settings come from `_settings_for`
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=1, max_retries=0)  # retries are ours
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(self.headers)
        return session

    def _settings_for(self, url: str) -> dict:
        """The proxies and CA bundle the environment gives requests for `url`'s scheme and host."""
        parts = urlsplit(url)
        origin = (parts.scheme.lower(), parts.netloc.lower())
        if origin not in self._settings:
            self._settings[origin] = self._environment.merge_environment_settings(url, {}, True, None, None)
        return self._settings[origin]

    def get(self, url: str, sink: BinaryIO) -> int:
        """Write the body of `url` into `sink` (emptied before each attempt); its size. FetchError says why not."""
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
            if urlsplit(url).scheme.lower() not in SCHEMES:
                raise FetchError(f"refused {printable(url)}: http and https only")
            try:
                response = self._session().get(url, allow_redirects=False, **self._settings_for(url),
                                               timeout=(self.options.timeout, self.options.timeout))
            except requests.Timeout:
                raise _Retry(f"no answer within {self.options.timeout:g} s") from None
            except requests.RequestException as error:
                raise _failure(error) from None
            except ValueError as error:  # requests parses a redirect's Location even when not following it
                raise FetchError(f"malformed redirect: {_why(error)}") from None
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers["Location"])
                    continue
                self._check_status(response)
                return self._body(response, sink)
        raise FetchError(f"more than {self.options.max_redirects} redirects")

    @staticmethod
    def _check_status(response: requests.Response) -> None:
        status = f"HTTP {response.status_code} {response.reason or ''}".strip()
        if response.status_code in (429, 503):
            raise _Retry(status, retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 500 or response.status_code == 408:
            raise _Retry(status)
        if response.status_code != 200:
            raise FetchError(status, response.status_code)

    def _body(self, response: requests.Response, sink: BinaryIO) -> int:
        cap = self.options.max_bytes
        declared = response.headers.get("Content-Length", "")
        if _whole(declared) and int(declared) > cap:
            raise FetchError(f"body of {int(declared):,} bytes is over the size cap of {cap:,} (--max-bytes)")
        rate, window = self.options.min_rate
        size, started, received = 0, time.monotonic(), 0
        try:
            while chunk := response.raw.read1(CHUNK, decode_content=True):  # what arrived: a trickle is seen
                size += len(chunk)
                received += len(chunk)
                if size > cap:
                    raise FetchError(f"body over the size cap of {cap:,} bytes (--max-bytes): stopped there")
                if self.stopping.is_set():
                    raise FetchError("run stopped")
                sink.write(chunk)
                if (elapsed := time.monotonic() - started) >= window:
                    if received < rate * elapsed:
                        raise _Retry(f"stalled: {received:,} bytes in {elapsed:.0f} s, below M3L_DOWNLOAD_MIN_RATE="
                                     f"{rate} bytes/s over M3L_DOWNLOAD_RATE_WINDOW={window} s")
                    started, received = time.monotonic(), 0
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            raise _Retry(f"connection broken after {size:,} bytes: {_why(error)}") from None
        return size


def _failure(error: requests.RequestException) -> Exception:
    """A request that got no answer: a retry, unless asking again cannot help (a malformed URL, a refused
    certificate), or the setup is wrong (a SOCKS proxy without PySocks: a UserError for the whole run)."""
    if isinstance(error, requests.exceptions.InvalidSchema) and "SOCKS" in str(error):
        return UserError("a SOCKS proxy is set (HTTP_PROXY, HTTPS_PROXY or ALL_PROXY) but PySocks is not "
                         "installed: pip install pysocks, or unset the proxy")
    unrecoverable = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                     requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader)
    if isinstance(error, unrecoverable) or isinstance(_innermost(error), ssl.SSLCertVerificationError):
        return FetchError(f"request refused: {_why(error)}")
    return _Retry(f"connection failed: {_why(error)}")
