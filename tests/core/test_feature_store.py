"""Feature store: the JSON format, resume decisions, atomic writes, consolidation."""

from __future__ import annotations

import os
import signal

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from m3l.models import MODELS
from m3l.store.consolidate import consolidate
from m3l.store.codec import parse_vector
from m3l.store.writer import FeatureStore
from tests.outputs import read_vector

VGGISH = MODELS["vggish"]  # 128-d, values rounded to 6 decimals
MINILM = MODELS["minilm"]


def test_vector_file_holds_exactly_id_and_float32_values(tmp_path):
    store = FeatureStore(tmp_path, MINILM)
    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    store.write("12", vector)
    np.testing.assert_array_equal(read_vector(tmp_path / "minilm", "12"), vector)  # the file's one key is the id


def test_audio_values_are_rounded_to_six_decimals(tmp_path):
    FeatureStore(tmp_path, VGGISH).write("1", np.full(128, 1 / 3, dtype=np.float32))
    assert read_vector(tmp_path / "audio_vggish", "1")[0] == np.float32(0.333333)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_right_after_a_write_still_counts_it_in_the_summary(tmp_path, monkeypatch, signal_number):
    store = FeatureStore(tmp_path, MINILM)
    rename, log = os.replace, store.log

    def rename_then_signal(source, target):
        rename(source, target)
        signal.raise_signal(signal_number)

    def log_then_signal(*args):
        log(*args)
        signal.raise_signal(signal_number)

    def stop(number, frame):  # as the extract scripts stop on SIGINT and SIGTERM
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", rename_then_signal)
    monkeypatch.setattr(store, "log", log_then_signal)
    previous = signal.signal(signal_number, stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            store.write("1", np.ones(384, dtype=np.float32))
        with pytest.raises(KeyboardInterrupt):
            store.fail("2", "a reason")
    finally:
        signal.signal(signal_number, previous)
    assert (tmp_path / "minilm" / "1.json").is_file() and store.summary.done == 1
    assert "2 failed a reason" in store.log_path.read_text() and store.summary.failed == 1


@pytest.mark.parametrize("bad", [np.zeros(383), np.full(384, np.nan), np.full(384, np.inf)])
def test_malformed_vectors_are_refused_and_nothing_is_written(tmp_path, bad):
    store = FeatureStore(tmp_path, MINILM)
    with pytest.raises(ValueError):
        store.write("1", bad)
    assert list((tmp_path / "minilm").iterdir()) == []


@pytest.mark.parametrize("raw", [b"", b'{"1": [0.1', b'{"2": [0.0, 0.0]}', b'{"1": [0.0, "x"]}', b"[1, 2]",
                                 b'{"1": [0.0, NaN]}', b'{"1": [0.0, true]}', b'{"1": [0, 1], "2": [0, 1]}'])
def test_parse_vector_rejects_anything_but_a_complete_vector(raw):
    assert isinstance(parse_vector(raw, "1", 2), str)


def test_pending_skips_complete_files_and_logs_corrupt_ones(tmp_path):
    store = FeatureStore(tmp_path, MINILM)
    store.write("1", np.ones(384))
    (tmp_path / "minilm" / "2.json").write_text('{"2": [1.0, 2.0')
    assert store.pending(["1", "2", "3"]) == ["2", "3"]
    assert store.summary.already_done == 1
    line = (tmp_path / "log_minilm.txt").read_text().strip()
    assert line.split(" ")[1:4] == ["minilm", "2", "recompute"]


def test_consolidation_sorts_integer_ids_numerically(tmp_path):
    store = FeatureStore(tmp_path, MINILM)
    for movie_id in ("10", "9", "100"):
        store.write(movie_id, np.full(384, int(movie_id), dtype=np.float32))
    h5, parquet = consolidate(tmp_path, MINILM)
    table = pq.read_table(parquet)
    assert table.column("movie_id").to_pylist() == [9, 10, 100]
    assert table.schema.field("embedding").type.value_type == "float"
    with h5py.File(h5) as handle:
        assert handle["movie_ids"][:].tolist() == [9, 10, 100]
        np.testing.assert_array_equal(handle["embeddings"][:, 0], [9, 10, 100])
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_consolidation_keeps_string_ids_as_strings(tmp_path):
    store = FeatureStore(tmp_path, MINILM)
    for movie_id in ("tt2", "tt10", "7"):
        store.write(movie_id, np.zeros(384))
    h5, parquet = consolidate(tmp_path, MINILM)
    assert pq.read_table(parquet).column("movie_id").to_pylist() == ["7", "tt10", "tt2"]
    with h5py.File(h5) as handle:
        assert [i.decode() for i in handle["movie_ids"][:]] == ["7", "tt10", "tt2"]


def test_consolidation_of_an_empty_folder_writes_empty_tables(tmp_path):
    FeatureStore(tmp_path, MINILM)
    h5, parquet = consolidate(tmp_path, MINILM)
    assert pq.read_table(parquet).num_rows == 0
    with h5py.File(h5) as handle:
        assert handle["embeddings"].shape == (0, 384)
