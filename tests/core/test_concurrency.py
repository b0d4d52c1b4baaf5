"""Guarantee 3 (docs/guarantees.md): two runs on one output folder at once.

The per-model lock lets one run write a model at a time; the other waits, then finds
those ids done. Nothing is corrupted, no id is computed twice, the union is complete.
Every extract script takes the locks, plans and consolidates in the same code (m3l.cli.extract);
it runs here for text (decoded in-process) and images (loader workers, two models, so two locks).
"""

from __future__ import annotations

import os
import select
import subprocess
import time

import pytest

from m3l.models import MODELS, lookup
from m3l.store.locks import model_locks
from tests.core.extractors import (EXTRACTORS, TEXT, arguments, assert_same_vectors, finish, snapshot, start, summaries,
                                   temporary_files)


def stderr_until(process: subprocess.Popen, text: str, timeout: float = 300) -> str:
    """What the process wrote to stderr up to a chunk holding `text`."""
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline and process.poll() is None, seen
        if select.select([process.stderr], [], [], 0.5)[0]:
            seen += os.read(process.stderr.fileno(), 65536).decode(errors="replace")
    return seen


@pytest.mark.parametrize("extractor", [e for e in EXTRACTORS if e.modality in ("text", "image")], ids=str)
def test_two_runs_on_one_folder_compute_each_id_once_and_complete_the_union(extractor, tmp_path, extractor_store,
                                                                            clean_run):
    catalogue, clean = clean_run(extractor)
    ids = [str(i) for i in range(1, extractor.items + 1)]
    third = len(ids) // 3
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("\n".join(ids[: 2 * third]))  # the two runs share the middle third
    second.write_text("\n".join(ids[third:]))
    output = tmp_path / "output"
    output.mkdir()
    args = arguments(extractor, catalogue, extractor_store(extractor), output)
    # Hold the lock until both runs are queued on it, so that they surely overlap.
    with model_locks(output, [lookup(folder) for folder in extractor.folders]):
        runs = [start(extractor, [*args, "--ids", first]), start(extractor, [*args, "--ids", second])]
        for process in runs:
            stderr_until(process, "waiting for it to finish")
    results = [finish(process) for process in runs]
    assert [code for code, _, _ in results] == [0, 0], [stderr for _, _, stderr in results]
    for folder in extractor.folders:
        done = [summaries(stdout)[folder] for _, stdout, _ in results]
        assert sum(counts["done"] for counts in done) == len(ids)  # each id computed once
        assert sorted(counts["already done"] for counts in done) == [0, third]
    assert temporary_files(output) == []
    # The second run to finish consolidated the union; everything equals one uninterrupted run.
    assert_same_vectors(snapshot(output, extractor), snapshot(clean, extractor))


def test_runs_of_different_models_do_not_wait_for_each_other(tmp_path, extractor_store):
    """The lock is per model: minilm on one folder does not block another model's run there."""
    with model_locks(tmp_path, [MODELS["mpnet"]]):
        catalogue = tmp_path / "plots.tsv"
        catalogue.write_text("movie_id\tplot\n1\tA short plot.\n")
        code, stdout, stderr = finish(start(TEXT, arguments(TEXT, catalogue, extractor_store(TEXT), tmp_path)),
                                      timeout=300)
    assert code == 0 and "waiting" not in stderr, stderr
    assert summaries(stdout)["minilm"]["done"] == 1
