"""Guarantee 4 (docs/guarantees.md): Ctrl-C (and a scheduler's SIGTERM) stops a run cleanly.

The signal goes to the whole process group, as a terminal sends Ctrl-C, decoding
workers included: no traceback from any of them. The run stops within seconds,
keeps every complete file, prints its summary and exits 130 (143 for SIGTERM);
the next run resumes.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.core.extractors import (EXTRACTORS, arguments, assert_same_vectors, finish, json_files, run, signal_group,
                                   snapshot, start, summaries, table_name, temporary_files, wait_for)

STOP_SECONDS = 30  # "a few seconds" is about one batch; generous for a loaded two-core machine
# Text decodes inline; every other extractor runs loader workers, which the signal reaches too.
CASES = [(extractor, signum) for extractor in EXTRACTORS for signum in (signal.SIGINT, signal.SIGTERM)]


@pytest.mark.parametrize("extractor, signum", CASES, ids=lambda value: str(getattr(value, "name", value)))
def test_signal_stops_cleanly_with_summary_and_exit_code(extractor, signum, tmp_path, extractor_store, clean_run):
    catalogue, clean = clean_run(extractor)
    output = tmp_path / "output"
    args = arguments(extractor, catalogue, extractor_store(extractor), output)
    process = start(extractor, args)
    assert wait_for(lambda: len(json_files(output, extractor.folders)) >= 1, process)
    signalled = time.monotonic()
    signal_group(process, signum)
    code, stdout, stderr = finish(process, timeout=120)
    stopped_after = time.monotonic() - signalled
    assert code == 128 + signum, stderr
    assert stopped_after < STOP_SECONDS
    assert "interrupted: every file written so far is complete" in stderr and "Traceback" not in stderr, stderr
    written = {folder: len(json_files(output, (folder,))) for folder in extractor.folders}
    for folder in extractor.folders:
        counts = summaries(stdout)[folder]  # the summary is printed, and it tells the truth
        assert counts["done"] == written[folder]
        assert not (output / f"{table_name(extractor, folder)}.parquet").exists()  # no consolidation
    assert temporary_files(output) == []
    snapshot(output, extractor)  # every file written is complete
    if signum == signal.SIGTERM:
        return  # resuming after either signal is the same; the SIGINT case checks it

    code, stdout, stderr = run(extractor, args)
    assert code == 0, stderr
    for folder in extractor.folders:
        assert summaries(stdout)[folder]["already done"] == written[folder]
    assert_same_vectors(snapshot(output, extractor), snapshot(clean, extractor))
