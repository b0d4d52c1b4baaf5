"""How an output folder was made: each run's resolved config (`run_<timestamp>.toml`) and one line per
run in `runs.jsonl` (time, command, config file, models, outcome).

Kept apart from provenance.jsonl, whose records describe weights and recipes and must not
change from one run to the next.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from m3l.errors import UserError
from m3l.store.files import OutputError, open_regular
from m3l.store.layout import FeatureRoot


def timestamp(seconds: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))


def write_config(output: Path, text: str, started: float) -> Path:
    """A new `run_<timestamp>.toml` holding `text` (`-2`, `-3`... after the timestamp for runs started
    in the same second)."""
    for number in itertools.count(1):
        path = FeatureRoot(output).run_config(timestamp(started), number)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            raise OutputError(path, error) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as error:
            path.unlink(missing_ok=True)
            raise OutputError(path, error) from None
        return path


def append_run(output: Path, record: dict[str, Any]) -> None:
    """One line in runs.jsonl, written with one append, so runs ending together never mix their lines."""
    path = FeatureRoot(output).runs_log
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())
    except OSError as error:
        raise OutputError(path, error) from None
    finally:
        os.close(fd)


@contextmanager
def recorded(output: Path, command: str, config: Path | None, resolved: str,
             models: list[str]) -> Iterator[dict[str, Any]]:
    """Write the run's config (unless it is a run config of this folder that holds it already), and its line
    in runs.jsonl when it ends, however it ends. The line is yielded: its `run_config` names the config
    written; an `outcome` set in the block stands."""
    started = time.time()
    written = config if config is not None and _holds(output, config, resolved) else \
        write_config(output, resolved, started)
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "command": command,
              "config": None if config is None else str(config.absolute()), "run_config": written.name,
              "models": models, "outcome": None}
    try:
        yield record
        record["outcome"] = record["outcome"] or "finished"
    except KeyboardInterrupt:
        record["outcome"] = "interrupted"
        raise
    except UserError as error:
        record["outcome"] = f"error: {error}"
        raise
    finally:
        record["outcome"] = record["outcome"] or "crashed"
        record["seconds"] = round(time.time() - started, 1)
        _append_unless_failing(output, record)


def _holds(output: Path, config: Path, resolved: str) -> bool:
    """Whether `config` is a run config of this folder with every table of `resolved` as it is: the file
    extract_all.py gave its children, or a rerun of a run config without --set or other options."""
    if not FeatureRoot(output).is_run_config(config):
        return False
    try:
        with open(config, "rb") as handle:
            written = tomllib.load(handle)
    except (OSError, ValueError):  # gone or changed since it was read: the run gets its own
        return False
    return all(written.get(name) == table for name, table in tomllib.loads(resolved).items())


def _append_unless_failing(output: Path, record: dict[str, Any]) -> None:
    """The run's line; where the run already failed (a full disk), failing to write it is not news."""
    try:
        append_run(output, record)
    except UserError:
        if record["outcome"] == "finished":
            raise
