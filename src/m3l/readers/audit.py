"""The audit behind src/verify.py: is a feature folder complete and sound, ready to publish?

Per model it counts the ids expected (from the catalogue, when one is given), the
JSON files present and the ids missing (grouped by their logged reason), and it
flags every file that is not exactly `{id: [dim finite numbers]}`, all-zero
vectors, stray temporary files, and consolidated tables that disagree with the
JSON files. Any of those is a problem; `verify.py` exits non-zero when it finds one.
"""

from __future__ import annotations

import fcntl
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from m3l.errors import UserError
from m3l.models import ModelInfo
from m3l.readers.features import NO_LOG_ENTRY, missing_reasons, provenance, read_log
from m3l.store.files import open_for_reading
from m3l.store.codec import canonical_id
from m3l.store.scan import BAD_NAME, FolderScan
from m3l.store.tables import TABLE_FORMATS, chunk_rows
from m3l.store.layout import FeatureRoot, ModelLayout, vector_id, vector_name
from m3l.store.provenance import describe

SHOWN = 5  # ids shown per finding


@dataclass
class ModelAudit:
    info: ModelInfo
    folder: str  # the model's folder under the root's layout (`audio_whisper`, or M3L's `whisper`)
    expected: int | None = None  # None: no catalogue given for this modality
    present: int = 0
    missing: dict[str, list[str]] = field(default_factory=dict)  # logged reason → ids
    unlogged_missing: int = 0
    findings: dict[str, list[str]] = field(default_factory=dict)  # problem → file names or ids
    notes: list[str] = field(default_factory=list)  # worth knowing, not wrong

    def flag(self, problem: str, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            self.findings.setdefault(problem, []).extend(names)

    def problems(self, accept_logged: bool) -> int:
        missing = self.unlogged_missing if accept_logged else sum(map(len, self.missing.values()))
        return missing + sum(map(len, self.findings.values()))

    def report(self, accept_logged: bool) -> list[str]:
        info = self.info
        expected = "?" if self.expected is None else self.expected
        missing = sum(map(len, self.missing.values()))
        lines = [f"{self.folder} ({info.modality}, {info.dim}-d): expected {expected}, present {self.present}, "
                 f"missing {missing}"]
        lines += [f"  missing {len(ids)}: {reason}: {_shown(ids)}" for reason, ids in self.missing.items()]
        lines += [f"  {problem}: {len(names)}: {_shown(names)}" for problem, names in self.findings.items()]
        lines += [f"  note: {note}" for note in self.notes]
        count = self.problems(accept_logged)
        lines.append(f"  {'OK' if count == 0 else f'{count} problem' + ('s' if count > 1 else '')}")
        return lines


def _shown(names: list[str]) -> str:
    more = f" (+{len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return ", ".join(sorted(names, key=lambda name: (len(name), name))[:SHOWN]) + more


def _audit_lock(audit: ModelAudit, layout: ModelLayout) -> None:
    """Whether a run holds the model's lock now (a note); a lock name that is no regular file is a problem."""
    path = layout.lock
    fd = open_for_reading(path)
    if fd is None:
        if os.path.lexists(path):
            audit.flag("lock files that are not regular files (never opened; a run refuses them: remove them)",
                       [path.name])
        return
    with os.fdopen(fd) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            audit.notes.append("a run is writing this model right now: the numbers may change")


@dataclass
class JsonVectors:
    """The sound vectors of a JSON folder, in place in the scan's matrix (no sorted copy)."""

    row_of: dict[str, int]  # sound id → row of matrix
    matrix: np.ndarray
    damaged: set[str]  # ids whose file is there but unusable


def _in_chunks(positions: np.ndarray, dim: int) -> Iterator[np.ndarray]:
    step = chunk_rows(dim)
    return (positions[start:start + step] for start in range(0, len(positions), step))


def _audit_json(audit: ModelAudit, folder: Path) -> JsonVectors:
    """Check every `<id>.json` entry of the folder."""
    scan = FolderScan(folder, audit.info.dim)
    scan.read(range(len(scan.ids)))
    audit.present = scan.listed
    damaged = set()
    for name, problem in sorted(scan.problems.items()):
        audit.flag(problem, [name])
        if problem != BAD_NAME:
            damaged.add(vector_id(name))
    sound = scan.sound()
    if not audit.info.zero_vectors_ok:
        zero = (rows[~scan.matrix[rows].any(axis=1)] for rows in _in_chunks(sound, audit.info.dim))
        audit.flag("all-zero vectors", sorted(vector_name(scan.ids[k]) for rows in zero for k in rows))
    return JsonVectors({scan.ids[k]: int(k) for k in sound}, scan.matrix, damaged)


@dataclass
class TableCheck:
    """What one pass over a consolidated table found, compared with the JSON folder when there is one."""

    ids: Counter = field(default_factory=Counter)
    not_finite: list[str] = field(default_factory=list)
    without_json: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)

    def add(self, ids: list[str], matrix: np.ndarray, json: JsonVectors | None) -> None:
        self.ids.update(ids)
        self.not_finite += [ids[k] for k in np.flatnonzero(~np.isfinite(matrix).all(axis=1))]
        if json is None:
            return
        rows = np.array([json.row_of.get(movie_id, -1) for movie_id in ids], dtype=np.int64)
        self.without_json += [ids[k] for k in np.flatnonzero(rows < 0) if ids[k] not in json.damaged]
        found = np.flatnonzero(rows >= 0)
        same = (matrix[found] == json.matrix[rows[found]]).all(axis=1)
        self.differing += [ids[k] for k in found[~same]]


def _audit_consolidated(audit: ModelAudit, layout: ModelLayout, json: JsonVectors | None) -> None:
    """Each consolidated table, read a chunk of rows at a time, against the sound JSON files (or on its own)."""
    tables = layout.present_tables()
    audit.flag("entries that are not regular files where a consolidated table should be (never opened)",
               [path.name for source, path in layout.tables.items() if source not in tables and os.path.lexists(path)])
    if not tables:
        audit.notes.append("no consolidated tables (run src/consolidate.py)")
    for source, path in tables.items():
        check = TableCheck()
        try:
            for ids, matrix in TABLE_FORMATS[source].chunks(path, audit.info.dim):
                check.add(ids, matrix, json)  # chunks' ids are the canonical strings
        except Exception as error:  # noqa: BLE001 - any reader error means the table is damaged
            audit.flag(f"{path.name} cannot be read", [" ".join(str(error).split())[:200]])
            continue
        audit.flag(f"{path.name}: duplicate ids", sorted(i for i, n in check.ids.items() if n > 1))
        audit.flag(f"{path.name}: NaN or Inf values", check.not_finite)
        if json is None:
            continue
        audit.flag(f"{path.name}: ids without a JSON file", check.without_json)
        audit.flag(f"{path.name}: out of date, ids missing (run src/consolidate.py)",
                   [i for i in json.row_of if i not in check.ids])
        audit.flag(f"{path.name}: vectors that differ from their JSON file", check.differing)


def _audit_provenance(audit: ModelAudit, layout: ModelLayout, has_folder: bool) -> None:
    """The provenance as a note; ids written under a second one (--allow-mixed) are a problem."""
    try:
        summary = provenance(layout.output, layout, source="json" if has_folder else "auto")
    except UserError as error:  # provenance.jsonl damaged or crafted
        audit.flag("provenance unreadable", [str(error)])
        return
    except Exception:  # noqa: BLE001 - a damaged table is flagged by _audit_consolidated
        return
    if summary is None:
        audit.notes.append("no provenance record: what produced these vectors is unknown")
        return
    adopted = summary.get("adopted")
    if adopted:
        audit.notes.append(f"{len(adopted['ids'])} ids adopted as {adopted['label']} (--adopt-as: made elsewhere, "
                           f"provenance unknown): {_shown(adopted['ids'])}")
    audit.notes.append(f"provenance{' of every other id' if adopted else ''}: {describe(summary['provenance'])}")
    for other in summary["others"]:
        audit.flag(f"ids written under a second provenance ({describe(other)}) with --allow-mixed", other["ids"])


def audit_model(output: Path | FeatureRoot, info: ModelInfo, catalogue_ids: set[str] | None) -> ModelAudit:
    layout = FeatureRoot.of(output).layout(info)
    audit = ModelAudit(info, layout.name)
    json = _audit_json(audit, layout.folder) if layout.folder.is_dir() else None
    if json is None:
        audit.notes.append(f"no JSON folder {layout.folder.name}/: only the consolidated tables were checked")
    audit.flag("stray temporary files (left by a killed run; the next run removes them)",
               [path.name for path in layout.temporaries()])
    _audit_consolidated(audit, layout, json)
    _audit_provenance(audit, layout, json is not None)
    _audit_lock(audit, layout)
    if catalogue_ids is not None and json is not None:
        expected = {canonical_id(i) for i in catalogue_ids}
        audit.expected = len(expected)
        unfound = sorted(expected - json.row_of.keys() - json.damaged)
        audit.missing = missing_reasons(read_log(layout.output, layout), unfound)
        audit.unlogged_missing = len(audit.missing.get(NO_LOG_ENTRY, []))
        extra = json.row_of.keys() - expected
        if extra:
            audit.notes.append(f"{len(extra)} vectors for ids not in the catalogue: {_shown(sorted(extra))}")
    return audit


def audit(output: Path, catalogues: dict[str, set[str]], models: list[ModelInfo] | None = None,
          layout: str | None = None) -> list[ModelAudit]:
    """Audit every model found under `output` (or those given), in `layout` (see m3l.store.layout);
    `catalogues` maps modality → ids."""
    root = FeatureRoot(output, layout)
    return [audit_model(root, info, catalogues.get(info.modality)) for info in models or root.found()]
