"""Checks shared by the Ray engine tests of every test folder (their `ray_cluster` fixture is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.outputs import read_vectors
from tests.testlib import is_run_record


def log_statuses(log: Path) -> list[tuple[str, str]]:
    """(id, status) of each line of a model's log, sorted: what happened, without timestamps."""
    return sorted((line.split()[2], line.split()[3]) for line in log.read_text().splitlines())


def assert_engines_agree(modality: str, store: Path, output: Path, *args: str, rtol: float = 1e-4) -> list[str]:
    """Run one extractor with the local engine and then the Ray engine (on the `ray_cluster` instance);
    both must write the same files, the same vectors (within float noise) and the same log statuses.

    Returns the output folders (one per model) that were compared.
    """
    from m3l.cli import main

    common = ["--models-dir", str(store), *args]
    assert main(modality, [*common, "--output", str(output / "local")]) == 0
    assert main(modality, [*common, "--output", str(output / "ray"), "--engine", "ray", "--workers", "1"]) == 0

    local, ray = output / "local", output / "ray"
    assert sorted(p.name for p in ray.iterdir() if not is_run_record(p.name)) == \
        sorted(p.name for p in local.iterdir() if not is_run_record(p.name))
    folders = sorted(p.name for p in local.iterdir() if p.is_dir())
    for folder in folders:
        expected, got = read_vectors(local / folder), read_vectors(ray / folder)
        assert sorted(got) == sorted(expected), folder
        for movie_id, vector in expected.items():
            np.testing.assert_allclose(got[movie_id], vector, rtol=rtol, atol=1e-5, err_msg=f"{folder} {movie_id}")
        assert log_statuses(ray / f"log_{folder}.txt") == log_statuses(local / f"log_{folder}.txt")
    return folders
