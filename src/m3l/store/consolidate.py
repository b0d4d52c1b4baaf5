"""Consolidation: a model's JSON folder rebuilt into one Parquet and one HDF5 table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m3l.models import ModelInfo
from m3l.store.format import read_folder
from m3l.store.writer import atomic_output


def consolidate(output: Path, info: ModelInfo) -> tuple[Path, Path]:
    """Rebuild `<modality>_embeddings_<name>.parquet` and `.h5` from the JSON folder, sorted by id.

    `movie_id` is int64 when every id is an integer, else a string.
    """
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids, vectors = read_folder(output, info)
    numeric = bool(ids) and all(i.isdigit() for i in ids)
    keys = [int(i) for i in ids] if numeric else ids
    order = sorted(range(len(keys)), key=keys.__getitem__)
    keys, vectors = [keys[i] for i in order], vectors[order]

    offsets = pa.array(np.arange(len(keys) + 1, dtype=np.int32) * info.dim)
    table = pa.table({
        "movie_id": pa.array(keys, type=pa.int64() if numeric else pa.string()),
        "embedding": pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1), type=pa.float32())),
    })
    parquet_path = Path(output) / f"{info.consolidated_name}.parquet"
    h5_path = Path(output) / f"{info.consolidated_name}.h5"
    with atomic_output(parquet_path) as tmp:
        pq.write_table(table, tmp)
    with atomic_output(h5_path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("movie_ids", data=np.asarray(keys, dtype=np.int64 if numeric else h5py.string_dtype()))
        handle.create_dataset("embeddings", data=vectors, dtype=np.float32)
    return parquet_path, h5_path
