"""Consolidation: a model's JSON folder rebuilt into one Parquet and one HDF5 table."""

from __future__ import annotations

from pathlib import Path

from m3l.models import ModelInfo
from m3l.store.format import id_order, read_folder, table_paths, write_table
from m3l.store.provenance import metadata
from m3l.store.writer import atomic_output


def consolidate(output: Path, info: ModelInfo) -> tuple[Path, Path]:
    """Rebuild `<modality>_embeddings_<name>.parquet` and `.h5` from the JSON folder, sorted by id."""
    ids, vectors = read_folder(output, info)
    order = id_order(ids)
    ids, vectors = [ids[k] for k in order], vectors[order]
    paths = table_paths(output, info)
    provenance = metadata(Path(output) / info.folder)
    for source in ("parquet", "hdf5"):
        with atomic_output(paths[source]) as tmp:
            write_table(source, tmp, ids, vectors, provenance)
    return paths["parquet"], paths["hdf5"]
