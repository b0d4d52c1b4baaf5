"""The offline model store: every model's files exactly as their publisher ships them.

Loading always looks in the store first and then never touches the network. A
missing entry is downloaded when its host is reachable; otherwise the run stops
with the missing path and the command that fills the store.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from m3l.errors import UserError

HF_HOST = "huggingface.co"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.\w+$")


@dataclass(frozen=True)
class StoreEntry:
    """One file or folder of the store: `path` relative to the store root.

    Exactly one source: `repo_id` (a Hugging Face repository, stored as a folder) or
    `url` (a single file; a hex hash in its name is checked as a SHA-256 prefix).
    """

    path: str
    repo_id: str | None = None
    url: str | None = None

    @property
    def host(self) -> str:
        return HF_HOST if self.repo_id else urlparse(self.url or "").hostname or ""


def offline() -> bool:
    return any(os.environ.get(flag, "") not in ("", "0") for flag in ("M3L_OFFLINE", "HF_HUB_OFFLINE"))


def reachable(host: str, timeout: float = 3.0) -> bool:
    if offline():
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


class ModelStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, entry: StoreEntry) -> Path:
        return self.root / entry.path

    def missing(self, entries: tuple[StoreEntry, ...]) -> list[StoreEntry]:
        return [entry for entry in entries if not self.path(entry).exists()]

    def require(self, entries: tuple[StoreEntry, ...], fill_command: str) -> list[Path]:
        """Paths of `entries`, downloading the missing ones when their host is reachable."""
        for entry in self.missing(entries):
            if entry.host and not reachable(entry.host):  # no host: a local file:// source
                raise UserError(
                    f"model files missing from the store: {self.path(entry)} and {entry.host} is not "
                    f"reachable; fill the store on a machine with internet ({fill_command}) and copy it here"
                )
            self.download(entry)
        return [self.path(entry) for entry in entries]

    def download(self, entry: StoreEntry) -> Path:
        """Fetch one entry into a temporary name beside its final place, then rename it."""
        target = self.path(entry)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            if entry.repo_id:
                from huggingface_hub import snapshot_download

                snapshot_download(entry.repo_id, local_dir=staging / target.name)
            else:
                from torch.hub import download_url_to_file

                match = _HASH_IN_NAME.search(target.name)
                download_url_to_file(entry.url, str(staging / target.name),
                                     hash_prefix=match.group(1) if match else None, progress=True)
            os.replace(staging / target.name, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target
