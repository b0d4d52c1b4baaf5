"""Provenance: what produced a model's vectors, kept in the model's output folder so one folder never
silently mixes vectors of two different models.

`<output>/<folder>/provenance.jsonl` (`ModelLayout.provenance`) holds JSON lines. The first
record is the folder's provenance: model name, weights digest (of the weight files' SHA-256
as they are now), recipe version, precision, device type and the versions of the libraries
its vectors depend on (`ModelInfo.libraries`, declared per model and spec family; a library
an older record lacks is not compared). A run whose weights, recipe, precision or library
minor versions differ refuses to write there; with `--allow-mixed` it appends its own record and one
`{"id", "provenance"}` line per id it writes. Device type and library patch versions
only warn.

A folder that holds vectors and no record is of unknown provenance (vectors made
elsewhere, such as the published M3L features): a run refuses to write there unless
`--adopt-as LABEL`, which first writes `{"adopted": LABEL, "ids": [...]}` naming the ids
present then, and then the run's own record, which covers every other id.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from m3l.errors import UserError
from m3l.models import LIBRARIES
from m3l.store.files import OutputError, open_regular

METADATA_KEY = "m3l_provenance"  # Parquet schema metadata key and HDF5 attribute: the JSON of `summary()`
NUMBERS = ("model", "weights", "recipe", "precision")  # a change in any of these changes the vectors


def library_versions(libraries: tuple[str, ...]) -> dict[str, str | None]:
    """The installed version of each library (distribution name); None for one this venv lacks."""
    versions: dict[str, str | None] = {}
    for name in libraries:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def record(model: str, weights: str, recipe: int, precision: str, device: str,
           libraries: tuple[str, ...] = LIBRARIES) -> dict:
    """`libraries`: those the model's vectors depend on, as its table row declares them (`ModelInfo.libraries`)."""
    return {"model": model, "weights": weights, "recipe": recipe, "precision": precision,
            "device": device.split(":")[0], "libraries": library_versions(libraries)}


def digest(entry: dict) -> str:
    """Short name of a record, used by the id lines of a mixed folder."""
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:12]


def describe(entry: dict) -> str:
    libraries = ", ".join(f"{name} {version}" for name, version in entry.get("libraries", {}).items() if version)
    return (f"weights {str(entry.get('weights'))[:12]}, recipe {entry.get('recipe')}, {entry.get('precision')}, "
            f"{entry.get('device')}, {libraries}")


def _minor(version: str | None) -> tuple[str, ...] | None:
    return tuple(version.split("+")[0].split(".")[:2]) if version else None


def differences(old: dict, new: dict) -> tuple[list[str], list[str]]:
    """(differences that change numbers, differences that only warn), one phrase each."""
    changing = [f"{key} {str(old.get(key))[:12]} -> {str(new.get(key))[:12]}"
                for key in NUMBERS if old.get(key) != new.get(key)]
    warning = [f"device {old.get('device')} -> {new.get('device')}"] if old.get("device") != new.get("device") else []
    old_libraries, new_libraries = old.get("libraries", {}), new.get("libraries", {})
    for name in [name for name in new_libraries if name in old_libraries]:  # one an old record lacks: not compared
        before, after = old_libraries[name], new_libraries[name]
        if before and after and before != after:  # a library absent from one venv was not used by the model
            (warning if _minor(before) == _minor(after) else changing).append(f"{name} {before} -> {after}")
    return changing, warning


def metadata(path: Path) -> dict[str, str]:
    """The consolidated tables' provenance entry (Parquet schema metadata, HDF5 attributes) from the provenance
    file at `path`; empty if unrecorded."""
    summary = ProvenanceLog(path).summary()
    return {METADATA_KEY: json.dumps(summary, sort_keys=True)} if summary else {}


def _parsed(text: bytes) -> dict | None:
    """A provenance line: a record, an adoption, or an id written under a record; None for anything else."""
    try:
        line = json.loads(text)
    except (ValueError, RecursionError):
        return None
    keys = set(line) if isinstance(line, dict) else set()
    if keys == {"record"}:
        libraries = line["record"].get("libraries", {}) if isinstance(line["record"], dict) else None
        well_formed = isinstance(libraries, dict) and all(isinstance(v, (str, type(None))) for v in libraries.values())
    elif keys == {"adopted", "ids"}:
        well_formed = isinstance(line["adopted"], str) and isinstance(line["ids"], list) and all(
            isinstance(movie_id, str) for movie_id in line["ids"])
    else:
        well_formed = keys == {"id", "provenance"} and isinstance(line["id"], str) and isinstance(
            line["provenance"], str)
    return line if well_formed else None


class ProvenanceLog:
    """The provenance file of one model's output folder, at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def lines(self) -> list[dict]:
        """Every line of the file; one that is not a provenance line (damaged, or crafted) is a UserError."""
        if not os.path.lexists(self.path):
            return []
        with open(open_regular(self.path, os.O_RDONLY), "rb") as handle:
            raw = handle.read()
        lines = []
        for number, text in enumerate(raw.splitlines(), start=1):
            if text.strip():
                line = _parsed(text)
                if line is None:
                    raise UserError(f"{self.path} is damaged (line {number} is no provenance line); restore it, "
                                    "or write elsewhere with --output DIR")
                lines.append(line)
        return lines

    def records(self) -> list[dict]:
        return [line["record"] for line in self.lines() if "record" in line]

    def summary(self) -> dict | None:
        """The folder's provenance and, for a mixed folder, every other record with the ids written under it."""
        lines = self.lines()
        records = [line["record"] for line in lines if "record" in line]
        if not records:
            return None
        ids: dict[str, list[str]] = {}
        for line in lines:
            if "id" in line:
                ids.setdefault(line["provenance"], []).append(line["id"])
        others = [{**entry, "ids": sorted(set(ids.get(digest(entry), [])))} for entry in records[1:]]
        summary = {"provenance": records[0], "others": others}
        adopted = [line for line in lines if "adopted" in line]
        if adopted:
            summary["adopted"] = {"label": adopted[0]["adopted"], "ids": adopted[0]["ids"]}
        return summary

    def _append(self, *lines: dict) -> None:
        """Whole lines or nothing: a write cut short (disk full, file size limit) is undone."""
        data = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines).encode()
        fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            end = os.fstat(fd).st_size
            written = 0
            while written < len(data):  # a short write leaves the rest; the next says why
                written += os.write(fd, data[written:])
        except OSError as error:
            with suppress(OSError):
                os.ftruncate(fd, end)
            raise OutputError(self.path, error) from None
        finally:
            os.close(fd)

    def claim(self, current: dict, allow_mixed: bool, present: list[str],
              adopt_as: str | None = None) -> Callable[[str], None] | None:
        """Check a run's provenance against the folder's before it writes; record it when the folder has none.

        `present`: the ids with a vector in the folder now. Without a record they are of unknown
        provenance: refused, or recorded as adopted under `adopt_as`.
        Returns what logs each id written when the run mixes provenances (with `allow_mixed`), else None.
        """
        records = self.records()
        if not records:
            if present and not adopt_as:
                raise UserError(f"{self.path.parent} holds {len(present)} vectors and no provenance record: what made "
                                "them is unknown; add --adopt-as LABEL (e.g. m3l-published) to record them as "
                                "adopted under LABEL beside this run's own, or write elsewhere with --output DIR")
            adopted = [{"adopted": adopt_as, "ids": sorted(present)}] if present else []
            self._append(*adopted, {"record": current})
            return None
        changing, warning = differences(records[0], current)
        if warning:
            print(f"{current['model']}: warning: {', '.join(warning)} since this folder's first run "
                  f"(vectors may differ in the last digits)", file=sys.stderr)
        if not changing:
            return None
        if not allow_mixed:
            raise UserError(f"{self.path.parent} holds {current['model']} vectors made with different "
                            f"{'; '.join(changing)}; write elsewhere with --output DIR, or add --allow-mixed "
                            f"to mix them (every id written is logged in {self.path})")
        name = digest(current)
        if all(digest(entry) != name for entry in records):
            self._append({"record": current})
        return lambda movie_id: self._append({"id": movie_id, "provenance": name})
