"""Sample feature output folders for the tests: random vectors written as JSON files and logs through the real
feature store (tests/outputs.py reads them back)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m3l.models import MODELS
from m3l.store.consolidate import consolidate
from m3l.store.writer import FeatureStore


def write_features(output: Path, model: str, vectors: dict[str, np.ndarray],
                   failed: dict[str, str] | None = None, skipped: dict[str, str] | None = None,
                   consolidated: bool = True) -> FeatureStore:
    """One model's JSON files (and log lines), consolidated into Parquet/HDF5 unless told not to."""
    store = FeatureStore(output, MODELS[model])
    for movie_id, vector in vectors.items():
        store.write(movie_id, vector)
    for movie_id, reason in (failed or {}).items():
        store.fail(movie_id, reason)
    for movie_id, reason in (skipped or {}).items():
        store.skip(movie_id, reason)
    if consolidated:
        consolidate(output, store.info)
    return store


def random_vectors(model: str, ids: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {movie_id: rng.standard_normal(MODELS[model].dim).astype(np.float32) for movie_id in ids}
