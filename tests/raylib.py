"""A local Ray instance for the Ray engine tests of every test folder (import the `ray_cluster` fixture)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from tests.testlib import REPO, SRC


@pytest.fixture(scope="session")
def ray_cluster() -> str:
    """One Ray instance per test session (starting one takes many seconds on 2 cores): its GCS address.

    The workers import m3l and the test-only encoders from the checkout, as the scripts' workers do.
    """
    import ray

    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(SRC), str(REPO)])}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def read_vectors(folder: Path) -> dict[str, list[float]]:
    """Every per-movie JSON file of one model's output folder, by id."""
    vectors = {}
    for file in sorted(folder.glob("*.json")):
        (movie_id, vector), = json.loads(file.read_text()).items()
        assert movie_id == file.stem
        vectors[movie_id] = vector
    return vectors


def log_statuses(log: Path) -> list[tuple[str, str]]:
    """(id, status) of each line of a model's log, sorted: what happened, without timestamps."""
    return sorted((line.split()[2], line.split()[3]) for line in log.read_text().splitlines())
