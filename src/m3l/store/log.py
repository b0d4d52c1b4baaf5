"""A model's log, `log_<folder>.txt`: one line per event, `<timestamp> <model> <id> <status> <reason>`
(`log_line` writes one, `parse_log_line` reads one), and the `Summary` a run prints at its end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from m3l.catalog import printable
from m3l.store.files import open_for_reading


def log_line(model: str, movie_id: str, status: str, reason: str) -> str:
    """`<timestamp> <model> <id> <status> <reason>`: one line, the first four fields free of spaces."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    shown_id = (movie_id if movie_id.isprintable() else printable(movie_id)).replace(" ", "\\x20") or '""'
    return f"{stamp} {model} {shown_id} {status} {' '.join(reason.split())}\n"


@dataclass
class Summary:
    model: str
    done: int = 0
    already_done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (f"{self.model}: {self.done} done, {self.already_done} already done, {self.failed} failed, "
                f"{self.skipped} skipped in {self.seconds:.1f} s")


@dataclass(frozen=True)
class LogEntry:
    timestamp: str
    model: str
    movie_id: str
    status: str  # skipped, failed, recompute, warning
    reason: str


def parse_log_line(line: str) -> LogEntry | None:
    """The entry a `log_line` wrote, or None for a line of another shape."""
    parts = line.split(maxsplit=4)
    return LogEntry(*parts, *[""] * (5 - len(parts))) if len(parts) >= 4 else None


def read_log_file(path: Path) -> Iterator[LogEntry]:
    """The entries of a log; none when it is no regular file."""
    fd = open_for_reading(path)
    if fd is None:
        return
    with open(fd, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    for line in lines:
        entry = parse_log_line(line)
        if entry is not None:
            yield entry
