"""Reading extracted features back: matrices for notebooks, model listings, log reasons.

A model's vectors live in two forms under an output root: the per-movie JSON folder
(`<output>/<folder>/<id>.json`, the source of truth) and the consolidated tables
(`<output>/<modality>_embeddings_<name>.parquet` / `.h5`, rebuilt from that folder).
`load_features` reads a consolidated table (HDF5, the fastest to read, else
Parquet) when it is *up to date*, i.e. when its
modification time is no older than the JSON folder's and than every JSON file's in
it. Every write to the folder is an atomic rename, which touches the folder, so an
id added, rewritten or removed after the last consolidation makes the table stale,
and the JSON folder is read instead. A table whose JSON folder is absent (only the
tables were copied) is used as is.

Every source gives the same answer: ids as strings, exactly as their files are named,
sorted like the consolidated tables (numerically when every id is an integer written
without leading zeros, else as strings), and an N x dim float32 matrix whose row i is
the vector of ids[i]. No source builds a Python object per value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from m3l.errors import UserError
from m3l.models import ModelInfo
from m3l.store.codec import canonical_id, id_order
from m3l.store.log import LogEntry, read_log_file
from m3l.store.scan import read_folder
from m3l.store.tables import TABLE_FORMATS, read_table
from m3l.store.layout import VECTOR_SUFFIX, FeatureRoot, ModelLayout
from m3l.store.provenance import METADATA_KEY, ProvenanceLog

if TYPE_CHECKING:
    import pandas as pd

NO_LOG_ENTRY = "no log entry (never attempted?)"

CatalogueIds = Collection[str] | Mapping[str, Collection[str]]  # ids, or modality → ids


def _canonical_order(ids: list[str]) -> tuple[list[str], np.ndarray | None]:
    """Canonical ids and the permutation that sorts them like the tables; None when already sorted."""
    ids = [canonical_id(i) for i in ids]
    order = id_order(ids)[1]
    return ids, None if np.array_equal(order, np.arange(len(ids))) else order


def _sorted(ids: list[str], matrix: np.ndarray) -> tuple[list[str], np.ndarray]:
    ids, order = _canonical_order(ids)
    return (ids, matrix) if order is None else ([ids[k] for k in order], matrix[order])


def _newest_json_change_ns(folder: Path) -> int | None:
    """The latest modification among the folder and its JSON files; None when there is no folder.

    Entries are not followed: a dangling link is one more entry of the folder, not its absence."""
    try:
        newest = folder.stat().st_mtime_ns
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(VECTOR_SUFFIX):
                    try:
                        newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
                    except FileNotFoundError:  # removed since the listing: the folder's stamp tells
                        pass
        return newest
    except FileNotFoundError:
        return None


Root = Path | str | FeatureRoot  # an output root, or one with its layout settled (e.g. FeatureRoot(path, "m3l"))


def _layout(output_dir: Root, model: str | ModelInfo | ModelLayout, layout: str | None = None) -> ModelLayout:
    """The model's files under the root, in the layout asked for ("m3l": the published M3L folder
    names), else in the one the root's name says (see m3l.store.layout.layout_kind)."""
    return model if isinstance(model, ModelLayout) else FeatureRoot.of(output_dir, layout).layout(model)


def choose_source(output_dir: Root, model: str | ModelInfo | ModelLayout) -> str:
    """Where `load_features(..., source="auto")` reads: "hdf5" (the fastest) or "parquet" when up to date,
    else "json"."""
    layout = _layout(output_dir, model)
    newest_json = _newest_json_change_ns(layout.folder)
    for source, path in layout.present_tables().items():
        if newest_json is None or path.stat().st_mtime_ns >= newest_json:
            return source
    if newest_json is None:
        raise UserError(f"no features of {layout.info.name} under {output_dir}: neither {layout.folder.name}/ "
                        f"nor {layout.table_names()}")
    return "json"


def _read(layout: ModelLayout, source: str, vectors: bool) -> tuple[list[str], np.ndarray | None]:
    """Unsorted ids (and vectors) of one source; "auto" picks the up-to-date one."""
    sources = ("auto", *TABLE_FORMATS, "json")
    if source not in sources:
        raise UserError(f"unknown source {source!r}; choose from {', '.join(sources)}")
    if source == "auto":
        source = choose_source(layout.output, layout)
    if source == "json":
        if not layout.folder.is_dir():
            raise UserError(f"no JSON folder {layout.folder}")
        return read_folder(layout.folder, layout.info)
    return read_table(source, _table(layout, source), layout.info.dim, vectors)


def _table(layout: ModelLayout, source: str) -> Path:
    """The consolidated table of one format, a UserError when there is no such regular file."""
    path = layout.tables[source]
    if source not in layout.present_tables():
        raise UserError(f"no consolidated file {path}" + (" (only something else of that name, never opened)"
                                                          if os.path.lexists(path) else ""))
    return path


def load_features(output_dir: Root, model: str | ModelInfo, source: str = "auto",
                  layout: str | None = None) -> tuple[list[str], np.ndarray]:
    """The ids and the N x dim float32 matrix of one model, row i being the vector of ids[i].

    `source` is "auto" (the consolidated table when up to date, else the JSON folder),
    or "parquet", "hdf5" or "json" to read that one form. `layout` "m3l" reads the published
    M3L folder names (`4_audio_feat/whisper/`); by default a root named `features_json_format`
    or `N_<modality>_feat` is read so, any other in ours.
    """
    ids, matrix = _read(_layout(output_dir, model, layout), source, vectors=True)
    return _sorted(ids, matrix)


def provenance(output_dir: Root, model: str | ModelInfo, source: str = "auto",
               layout: str | None = None) -> dict | None:
    """What produced a model's vectors (see m3l.store.provenance.ProvenanceLog.summary); None when unrecorded.

    Read from the JSON folder's provenance.jsonl, or from the consolidated table's metadata.
    """
    layout = _layout(output_dir, model, layout)
    if source == "auto":
        source = choose_source(output_dir, layout)
    if source == "json":
        return ProvenanceLog(layout.provenance).summary()
    stored = TABLE_FORMATS[source].metadata(_table(layout, source)).get(METADATA_KEY)
    return json.loads(stored) if stored else None


def load_ids(output_dir: Root, model: str | ModelInfo, source: str = "auto", layout: str | None = None) -> list[str]:
    """The ids of `load_features` without reading the vectors of a consolidated table."""
    ids, order = _canonical_order(_read(_layout(output_dir, model, layout), source, vectors=False)[0])
    return ids if order is None else [ids[k] for k in order]


def as_dataframe(output_dir: Root, model: str | ModelInfo, source: str = "auto",
                 layout: str | None = None) -> pd.DataFrame:
    """One model's features as a DataFrame: index `movie_id` (str), columns 0..dim-1 (float32)."""
    import pandas as pd

    ids, matrix = load_features(output_dir, model, source, layout)
    return pd.DataFrame(matrix, index=pd.Index(ids, name="movie_id"))


def read_log(output_dir: Root, model: str | ModelInfo) -> list[LogEntry]:
    """The entries of the model's log; lines of another shape are ignored."""
    path = _layout(output_dir, model).log
    return list(read_log_file(path))


def missing_reasons(entries: list[LogEntry], missing: Iterable[str]) -> dict[str, list[str]]:
    """Why each id has no vector (its last `failed`/`skipped` log reason), as reason → ids."""
    reason_of = {}
    for entry in entries:
        if entry.status in ("failed", "skipped"):
            reason_of[canonical_id(entry.movie_id)] = entry.reason or entry.status
    grouped: dict[str, list[str]] = {}
    for movie_id in missing:
        grouped.setdefault(reason_of.get(movie_id, NO_LOG_ENTRY), []).append(movie_id)
    return dict(sorted(grouped.items(), key=lambda item: -len(item[1])))


def expected_ids(output_dir: Root, model: str | ModelInfo, ids: Iterable[str],
                 catalogue: CatalogueIds | None = None) -> list[str]:
    """The ids a model should have vectors for: the catalogue's (its modality's, when a mapping
    is given), or by default (and for a modality the mapping lacks) every id the runs saw:
    those with a vector and those in the model's log."""
    info = FeatureRoot.of(output_dir).lookup(model)
    if isinstance(catalogue, Mapping):
        catalogue = catalogue.get(info.modality)
    if catalogue is None:
        seen = [*ids, *(entry.movie_id for entry in read_log(output_dir, info))]
    else:
        seen = list(catalogue)
    return list(dict.fromkeys(map(canonical_id, seen)))


@dataclass(frozen=True)
class ModelSummary:
    name: str
    folder: str
    modality: str
    dim: int
    count: int  # vectors found
    expected: int  # ids it should cover (see expected_ids)
    coverage: float  # share of the expected ids that have a vector
    source: str  # where the vectors were read: parquet, hdf5 or json


def summarize(output_dir: Root, model: str | ModelInfo, ids: list[str],
              catalogue: CatalogueIds | None = None, source: str = "json") -> ModelSummary:
    info = FeatureRoot.of(output_dir).lookup(model)
    expected = expected_ids(output_dir, info, ids, catalogue)
    covered = len(set(expected).intersection(ids))
    return ModelSummary(info.name, info.folder, info.modality, info.dim, len(ids), len(expected),
                        covered / len(expected) if expected else 0.0, source)


def list_models(output_dir: Root, catalogue: CatalogueIds | None = None,
                layout: str | None = None) -> list[ModelSummary]:
    """Dimension, vector count and coverage of every model found under `output_dir`.

    `catalogue` gives the ids to cover: a collection of ids for every model, or a mapping
    modality → ids (e.g. {"text": plot ids, "image": poster ids}). Without it (or for a
    modality the mapping lacks), coverage is measured against the ids the runs saw:
    vectors plus ids in the model's log.
    """
    root, summaries = FeatureRoot.of(output_dir, layout), []
    for info in root.found():
        source = choose_source(root, info)
        summaries.append(summarize(root, info, load_ids(root, info, source), catalogue, source))
    return summaries
