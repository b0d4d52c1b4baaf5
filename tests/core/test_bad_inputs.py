"""Guarantees 5 and 6 (docs/guarantees.md): every extractor over the generated bad-input corpus.

Good items get vectors; bad ones a log line and no file; ids never become paths;
log lines have five greppable fields and agree with the printed summary.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from m3l.catalog import read_media_dir, read_media_map, read_plots
from tests.bad_inputs.make_corpus import BAD_IDS, make_corpus
from tests.core.extractors import EXTRACTORS, run, snapshot, summaries

LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\S+) (\S+) (skipped|failed|recompute|warning) (.+)")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def test_every_reader_rejects_ids_that_could_be_paths(corpus):
    readers = {"plots": read_plots(corpus.plots), "trailer map": read_media_map(corpus.trailers),
               "poster folder": read_media_dir(corpus.posters, (".jpg", ".jpeg", ".png"))}
    for name, catalogue in readers.items():
        ids = {item.id for item in catalogue.items}
        assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", i) and i.upper() not in {"CON", "NUL", "COM1"} for i in ids)
        rejected = {label.replace(" ", "\\x20") for label, _ in catalogue.rejected}  # as the log shows them
        expected_bad = {logged for _, logged, _ in BAD_IDS} if name != "poster folder" else \
            {"CON", "a\\x20b", "x" * 77 + "...", "caf\\xe9"}
        assert expected_bad <= rejected, (name, expected_bad - rejected)


@pytest.mark.parametrize("extractor", EXTRACTORS, ids=str)
def test_extractor_logs_every_bad_row_and_writes_only_good_ids(extractor, corpus, tmp_path, extractor_store):
    source = {"text": corpus.plots, "image": corpus.posters}.get(extractor.modality, corpus.trailers)
    expected = corpus.expected[extractor.modality]
    output, store = tmp_path / "output", extractor_store(extractor)
    around = set(tmp_path.parent.rglob("*"))
    code, stdout, stderr = run(extractor, [extractor.input_flag, str(source), "--models", extractor.models,
                                           "--models-dir", str(store), "--output", str(output), "--device", "cpu"])
    assert code == 0, stderr
    assert {p for p in tmp_path.parent.rglob("*") if not p.is_relative_to(output)} == around  # nothing elsewhere
    found = snapshot(output, extractor)
    for folder in extractor.folders:
        lines = (output / f"log_{folder}.txt").read_text(encoding="utf-8").splitlines()
        parsed = [LOG_LINE.fullmatch(line) for line in lines]
        assert all(parsed), [line for line, match in zip(lines, parsed) if not match]
        assert {match[2] for match in parsed} == {folder}
        by_status = {status: [m for m in parsed if m[4] == status] for status in ("failed", "skipped")}
        failed = {m[3] for m in by_status["failed"]}
        done = set(found[folder])
        assert expected.done <= done and not done & expected.failed, (done, failed)
        assert expected.failed <= failed and done.isdisjoint(failed)
        assert expected.either <= done | failed
        assert done | failed == expected.done | expected.failed | expected.either
        skipped = [(m[3], m[5]) for m in by_status["skipped"]]
        assert len(skipped) == len(expected.skipped), skipped
        for logged_id, reason in expected.skipped:
            assert any((logged_id in (None, i)) and reason in why for i, why in skipped), (logged_id, reason, skipped)
        counts = summaries(stdout)[folder]  # the summary agrees with the log
        assert (counts["done"], counts["failed"], counts["skipped"]) == (len(done), len(failed), len(skipped))
    assert set(output.rglob("*.json")) == {output / f / f"{i}.json" for f in extractor.folders for i in found[f]}
    assert not any(Path(f"/abs{suffix}").exists() for suffix in ("", ".json"))
