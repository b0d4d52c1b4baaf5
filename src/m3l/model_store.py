"""The offline model store: every model's files exactly as their publisher ships them.

Loading always looks in the store first and then never touches the network. A
missing entry is downloaded unless an offline flag is set; a download that cannot
reach its source stops the run with one line naming the source, the reason and the
command that fills the store elsewhere.

Each downloaded entry gets `<entry>.MANIFEST.json` beside it: where it came from, the
commit the hub resolved, and every file's size and SHA-256. Downloads stage into
`.<name>.partial` beside the entry under a per-entry lock, so an interrupted
download resumes there and two first runs download once.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from m3l.catalog import REGULAR, path_kind
from m3l.errors import UserError

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.\w+$")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_URL_ATTEMPTS = 4
MANIFEST_SUFFIX = ".MANIFEST.json"
_FILL_SCRIPT = "python src/download_models.py"


def fill_command(models_dir: Path | str | None = None, modality: str | None = None, models: str | None = None) -> str:
    """The command that fills the store on a machine with internet, named by every message about a missing model."""
    options = [("--modality", modality), ("--models-dir", models_dir), ("--models", models)]
    return " ".join([_FILL_SCRIPT, *(f"{flag} {shlex.quote(str(value))}" for flag, value in options if value)])


CHECK_COMMAND = f"{_FILL_SCRIPT} --check"  # names the store's files that differ from their manifests


@dataclass(frozen=True)
class StoreEntry:
    """One file or folder of the store: `path` relative to the store root.

    Exactly one source: `repo_id` (a Hugging Face repository at `revision`, only the
    files matching `allow_patterns`, stored as a folder) or `url` (a single file; a
    hex hash in its name is checked as a SHA-256 prefix).
    """

    path: str
    repo_id: str | None = None
    url: str | None = None
    revision: str = "main"
    allow_patterns: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.repo_id else self.url or ""


def offline() -> bool:
    """M3L_OFFLINE, or the hub's own flags read now with huggingface_hub's parsing (1, ON, YES, TRUE)."""
    from huggingface_hub.constants import _is_true

    hub_flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return _is_true(os.environ.get("M3L_OFFLINE")) or _is_true(hub_flag)


def _whole_number(variable: str, default: int, unit: str = "seconds") -> int:
    """A setting from the environment. huggingface_hub parses its timeouts as integers when it is
    imported, and any other value would fail there (loading a model, say) with int()'s message."""
    text = os.environ.get(variable) or str(default)
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{variable}={text!r} is not a whole number of {unit}; set it to an integer "
                        f"such as {default}") from None


def check_settings() -> None:
    """The download settings of the environment, checked before any library reads them."""
    _whole_number("HF_HUB_ETAG_TIMEOUT", 10)
    timeout()
    minimum_rate()


def timeout() -> int:
    """Seconds a download waits for the server: HF_HUB_DOWNLOAD_TIMEOUT, for hub and plain URLs alike."""
    return _whole_number("HF_HUB_DOWNLOAD_TIMEOUT", 10)


def minimum_rate() -> tuple[int, int]:
    """Bytes a download must receive in every window of seconds: M3L_DOWNLOAD_MIN_RATE (bytes per
    second, default 1024) over M3L_DOWNLOAD_RATE_WINDOW (default 60). A server that trickles a byte
    now and then never lets a wait time out; a deadline on the whole file would fail honest slow ones."""
    return (_whole_number("M3L_DOWNLOAD_MIN_RATE", 1024, "bytes per second"),
            _whole_number("M3L_DOWNLOAD_RATE_WINDOW", 60))


def _hub_client() -> object:
    """huggingface_hub's HTTP client, every request of which waits at most `timeout()` seconds for the
    server and receives its answer at `minimum_rate()` at least."""
    import httpx2
    from huggingface_hub.utils._http import default_client_factory

    class RateBounded(httpx2.SyncByteStream):
        def __init__(self, stream: httpx2.SyncByteStream, rate: MinimumRate) -> None:
            self.stream, self.rate = stream, rate

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self.stream:
                self.rate.count(len(chunk))
                yield chunk

        def close(self) -> None:
            self.stream.close()

    def bound_rate(response: httpx2.Response) -> None:
        response.stream = RateBounded(response.stream, MinimumRate(str(response.url)))

    client = default_client_factory()
    client.event_hooks["request"].append(_bounded_wait)
    client.event_hooks["response"].append(bound_rate)
    return client


def _bounded_wait(request: object) -> None:
    """Give a request sent with no timeout ours: snapshot_download lists a repository's files so,
    and would wait forever on a hub that accepts the connection and never answers."""
    waits = request.extensions.get("timeout") or dict.fromkeys(("connect", "read", "write", "pool"))
    request.extensions["timeout"] = {phase: timeout() if wait is None else wait for phase, wait in waits.items()}


def mirrored(url: str) -> str:
    """`url` as fetched: `<M3L_DOWNLOAD_MIRROR>/<host>/<path>` when a mirror is set."""
    mirror = os.environ.get("M3L_DOWNLOAD_MIRROR", "").rstrip("/")
    if not mirror:
        return url
    parsed = urlparse(url)
    return f"{mirror}/{parsed.hostname}{parsed.path}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _files_of(path: Path, name: str | None = None) -> dict[str, Path]:
    """A folder's files by relative path; a file entry's one file by `name` (default: its own)."""
    if path.is_file():
        return {name or path.name: path}
    return {str(file.relative_to(path)): file for file in sorted(path.rglob("*")) if file.is_file()}


def file_table(path: Path, name: str | None = None) -> dict[str, dict[str, object]]:
    """Size and SHA-256 of every file of an entry (a folder's files by relative path)."""
    return {key: {"size": file.stat().st_size, "sha256": sha256_of(file)} for key, file in _files_of(path, name).items()}


def digest_of(files: dict[str, dict[str, object]]) -> str:
    """One SHA-256 naming an entry's content: its files' names and hashes, wherever they came from."""
    lines = "".join(f"{name}\t{info['sha256']}\n" for name, info in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def cache_dir() -> Path:
    """What this machine keeps to save work: M3L_CACHE_DIR, else $XDG_CACHE_HOME/m3l (~/.cache/m3l)."""
    explicit = os.environ.get("M3L_CACHE_DIR")
    return Path(explicit) if explicit else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "m3l"


class KnownHashes:
    """The SHA-256 of store files hashed before on this machine (`<cache_dir>/file-hashes.json`, by real
    path), trusted only while the file's size, mtime, ctime and inode are those it was hashed with. A
    store copied elsewhere (new times) is hashed once there; a file changed in any way is hashed again."""

    def __init__(self) -> None:
        self.path = cache_dir() / "file-hashes.json"
        try:
            known = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            known = {}
        self.known: dict = known if isinstance(known, dict) else {}
        self.changed = False

    def sha256(self, file: Path) -> str:
        key, stamp = os.path.realpath(file), _stamp(file)
        known = self.known.get(key)
        if isinstance(known, list) and known[:-1] == stamp:
            return str(known[-1])
        digest = sha256_of(file)
        if _stamp(file) == stamp:  # not changed while it was read
            self.known[key] = [*stamp, digest]
            self.changed = True
        return digest

    def save(self) -> None:
        """Best effort: without a writable cache the files are hashed at every run."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_json(self.path, self.known)
        except OSError:
            pass


def _stamp(file: Path) -> list[int]:
    status = file.stat()
    return [status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev]


class ModelStore:
    def __init__(self, root: Path | str) -> None:
        check_settings()  # a store is opened before any model library is imported
        self.root = Path(root)

    def path(self, entry: StoreEntry) -> Path:
        return self.root / entry.path

    def manifest_path(self, entry: StoreEntry) -> Path:
        return self.root / (entry.path + MANIFEST_SUFFIX)

    def manifest(self, entry: StoreEntry) -> dict | None:
        """The entry's manifest, None when it has none; a damaged one is the user's to remove."""
        path = self.manifest_path(entry)
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_bytes())
            files = manifest.get("files")
            if isinstance(files, dict) and all(isinstance(f, dict) and "sha256" in f and "size" in f
                                               for f in files.values()):
                return manifest
        except (ValueError, AttributeError):
            pass
        raise UserError(f"{path} is not a model-store manifest (damaged?); remove it, then download the "
                        f"entry again or let its files be hashed as they are")

    def digest(self, entry: StoreEntry) -> str:
        """The entry's content digest, from its files as they are now, never from its manifest (weights
        swapped after the manifest was written must not pass for the ones it lists): hashed, or known
        from an earlier hash of the unchanged file (`KnownHashes`, outside the store, which a run only
        reads: it may be shared or read-only). Files that differ from the manifest are one warning.
        """
        manifest = self.manifest(entry)
        hashes = KnownHashes()
        files = {name: {"sha256": hashes.sha256(file)} for name, file in _files_of(self.path(entry)).items()}
        hashes.save()
        listed = {name: info["sha256"] for name, info in manifest["files"].items()} if manifest else None
        if listed is not None and listed != {name: info["sha256"] for name, info in files.items()}:
            print(f"warning: {self.path(entry)} differs from its manifest {self.manifest_path(entry).name} "
                  f"({CHECK_COMMAND} names the files)", file=sys.stderr)
        return digest_of(files)

    def weights_digest(self, entries: tuple[StoreEntry, ...]) -> str:
        """One digest for a model's entries (vggish has two files)."""
        if len(entries) == 1:
            return self.digest(entries[0])
        lines = "".join(f"{entry.path}\t{self.digest(entry)}\n" for entry in entries)
        return hashlib.sha256(lines.encode()).hexdigest()

    def check(self, entry: StoreEntry) -> list[str]:
        """One line per way the entry on disk differs from its manifest (none for an entry not in the store)."""
        path = self.path(entry)
        if not path.exists():
            return []
        manifest = self.manifest(entry)
        if manifest is None:
            return [f"{path}: no manifest ({self.manifest_path(entry).name}); its files cannot be checked"]
        expected, actual = manifest["files"], _files_of(path)
        problems = [f"{path / name}: missing" for name in expected if name not in actual]
        problems += [f"{file}: not in the manifest" for name, file in actual.items() if name not in expected]
        for name, file in actual.items():
            if name in expected:
                size, sha256 = file.stat().st_size, sha256_of(file)
                if size != expected[name]["size"] or sha256 != expected[name]["sha256"]:
                    problems.append(f"{file}: SHA-256 {sha256} ({size} bytes), manifest says "
                                    f"{expected[name]['sha256']} ({expected[name]['size']} bytes)")
        return problems

    def missing(self, entries: tuple[StoreEntry, ...]) -> list[StoreEntry]:
        return [entry for entry in entries if not self.path(entry).exists()]

    def require(self, entries: tuple[StoreEntry, ...], fill: str) -> list[Path]:
        """Paths of `entries`, downloading the missing ones unless offline."""
        for entry in self.missing(entries):
            if offline():
                raise UserError(
                    f"model files missing from the store: {self.path(entry)} and downloads are off (offline "
                    f"flag set); fill the store on a machine with internet ({fill}) and copy it here"
                )
            self.download(entry, fill)
        paths = [self.path(entry) for entry in entries]
        for path in paths:
            _require_regular_files(path)
        return paths

    def download(self, entry: StoreEntry, fill: str = fill_command()) -> Path:
        """Fetch one entry into `.<name>.partial` beside its place, record its manifest, rename it into place."""
        target = self.path(entry)
        with self._lock(entry):
            if target.exists():  # another process finished it while this one waited
                return target
            staging = target.with_name(f".{target.name}.partial")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._remove_leftovers(target, keep=staging)
            try:
                manifest = self._fetch_hub(entry, staging) if entry.repo_id else self._fetch_url(entry, staging)
            except UserError:
                raise
            except (OSError, http.client.HTTPException, ValueError) as error:
                raise UserError(f"downloading {entry.source} failed: {_one_line(error)}; retry (finished files "
                                f"are kept), or fill the store elsewhere ({fill}) and copy it here") from None
            manifest["files"] = file_table(staging, target.name)
            _write_json(self.manifest_path(entry), manifest)
            os.replace(staging, target)
        return target

    @contextmanager
    def _lock(self, entry: StoreEntry) -> Iterator[None]:
        """flock on `<root>/.locks/<entry>.lock`: one process downloads an entry, the others wait for it."""
        lock = self.root / ".locks" / f"{entry.path}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"{entry.path}: another process is downloading it; waiting", file=sys.stderr, flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    @staticmethod
    def _remove_leftovers(target: Path, keep: Path) -> None:
        """Hidden temporaries of this entry left by a killed download (the resumable staging stays):
        `.<name>.<random>` and its manifest's `.<name>.MANIFEST.json.<random>.tmp`, never those of an
        entry whose name only starts like this one's (`.<name>.v2.partial` is `<name>.v2`'s)."""
        own = re.compile(rf"\.{re.escape(target.name)}\.(?:[^.]+|{re.escape(MANIFEST_SUFFIX[1:])}\.[^.]+\.tmp)")
        for leftover in target.parent.glob(f".{glob.escape(target.name)}.*"):
            if own.fullmatch(leftover.name) and leftover != keep:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    def _fetch_hub(self, entry: StoreEntry, staging: Path) -> dict:
        """snapshot_download at the commit the revision resolves to; HF resumes files cut mid-way."""
        import httpx2
        from huggingface_hub import HfApi, constants, set_client_factory, snapshot_download
        from huggingface_hub.errors import HfHubHTTPError

        assert entry.repo_id
        set_client_factory(_hub_client)
        api = HfApi()
        try:
            commit = _commit(api, entry)
            snapshot_download(entry.repo_id, revision=commit, local_dir=staging,
                              allow_patterns=list(entry.allow_patterns) or None, etag_timeout=timeout())
        except HfHubHTTPError as error:
            raise UserError(f"downloading {entry.source} from {api.endpoint} failed: {_one_line(error)}") from None
        except httpx2.TransportError as error:
            raise UserError(f"cannot reach {api.endpoint} for {entry.source}: {_one_line(error)} "
                            f"(set HF_ENDPOINT or HTTPS_PROXY if the hub is reached another way)") from None
        _keep_snapshot_files(staging, commit)
        return {"source": f"{constants.ENDPOINT}/{entry.repo_id}", "repo_id": entry.repo_id,
                "revision": entry.revision, "commit": commit, "fetched_from": api.endpoint}

    def _fetch_url(self, entry: StoreEntry, staging: Path) -> dict:
        """GET the file, resuming with HTTP Range after a cut; check a hash prefix in its name."""
        assert entry.url
        url = mirrored(entry.url)
        for attempt in range(_URL_ATTEMPTS):
            try:
                if _fetch_range(url, staging):
                    break
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as error:
                if attempt == _URL_ATTEMPTS - 1:
                    raise UserError(f"downloading {url} failed after {_URL_ATTEMPTS} attempts: "
                                    f"{_one_line(error)}") from None
            except urllib.error.URLError as error:
                raise UserError(f"cannot download {url}: {_one_line(error)}") from None
        else:
            raise UserError(f"downloading {url} kept stopping short after {_URL_ATTEMPTS} attempts")
        match = _HASH_IN_NAME.search(Path(entry.path).name)
        if match and not sha256_of(staging).startswith(match.group(1)):
            staging.unlink()
            raise UserError(f"{url} does not match the hash in its name ({match.group(1)}): corrupt or "
                            f"wrong file, not kept")
        return {"source": entry.url, "revision": None, "commit": None, "fetched_from": url}


def _require_regular_files(path: Path) -> None:
    """Every file of an entry (links followed: a store may be assembled from links) is a regular file:
    torch and the model libraries open them by path, and would wait forever on a FIFO."""
    for file in (p for p in path.rglob("*") if not p.is_dir()) if path.is_dir() else [path]:
        kind = path_kind(file)
        if kind != REGULAR:
            raise UserError(f"model store file {file} is {kind}, not a regular file; put the model's file there "
                            f"({CHECK_COMMAND} lists what differs from the manifest)")


def _commit(api: object, entry: StoreEntry) -> str:
    """The commit the hub resolves the entry's revision to; an answer of another shape is a UserError."""
    try:
        commit = api.model_info(entry.repo_id, revision=entry.revision, timeout=timeout()).sha
    except (TypeError, AttributeError, KeyError):  # the library's parsing of a JSON that is no repo info
        commit = None
    if not (isinstance(commit, str) and _COMMIT.fullmatch(commit)):
        raise UserError(f"{api.endpoint} named no commit for {entry.source} (its answer is no Hugging Face "
                        "repository info: is HF_ENDPOINT a hub or mirror?)")
    return commit


def _keep_snapshot_files(staging: Path, commit: str) -> None:
    """Drop what a killed earlier attempt left in the staging folder and this snapshot did not fetch
    (other patterns, another commit), then huggingface_hub's download bookkeeping."""
    from huggingface_hub._local_folder import read_download_metadata

    for name, file in _files_of(staging).items():
        if not name.startswith(".cache/"):
            metadata = read_download_metadata(staging, name)
            if metadata is None or metadata.commit_hash != commit:
                file.unlink()
    shutil.rmtree(staging / ".cache", ignore_errors=True)


def _fetch_range(url: str, partial: Path) -> bool:
    """Append the rest of `url` to `partial`; True when the file is whole.

    A fresh opener per call reads HTTPS_PROXY/NO_PROXY from the environment now.
    """
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.build_opener().open(request, timeout=timeout())
    except urllib.error.HTTPError as error:
        if error.code != 416 or not have:  # 416: nothing after `have`; start over, the hash decides
            raise
        partial.unlink()
        return False
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        total = (have if resumed else 0) + int(length) if length is not None else None
        with partial.open("ab" if resumed else "wb") as handle:
            _copy_at_minimum_rate(response, handle, url)
    return total is None or partial.stat().st_size == total


def _copy_at_minimum_rate(response: http.client.HTTPResponse, handle: BinaryIO, url: str) -> None:
    """Copy the body as it arrives (what arrived stays in the partial file, for the next attempt to resume)."""
    rate = MinimumRate(url)
    while chunk := response.read1(1 << 20):
        handle.write(chunk)
        rate.count(len(chunk))


class MinimumRate:
    """A transfer that receives less than `minimum_rate()` over a window is a UserError."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.rate, self.window = minimum_rate()
        self.started, self.received = time.monotonic(), 0

    def count(self, size: int) -> None:
        """`size` more bytes arrived."""
        self.received += size
        elapsed = time.monotonic() - self.started
        if elapsed < self.window:
            return
        if self.received < self.rate * elapsed:
            raise UserError(f"downloading {self.url} stalled: {self.received} bytes in {elapsed:.0f} s, below "
                            f"M3L_DOWNLOAD_MIN_RATE={self.rate} bytes/s over M3L_DOWNLOAD_RATE_WINDOW={self.window} s; "
                            "retry (what arrived is kept), or fill the store elsewhere and copy it here")
        self.started, self.received = time.monotonic(), 0


def _write_json(path: Path, data: dict) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) < 300 else text[:297] + "..."
