import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

import m3l
from m3l.errors import UserError
from m3l.models import MODELS
from m3l.readers.features import choose_source, list_models, load_features, missing_reasons, read_log
from m3l.store.consolidate import consolidate
from tests.core.sample_outputs import random_vectors, write_features
from tests.outputs import read_vector

SOURCES = ("parquet", "hdf5", "json")


def assert_same_everywhere(output, model):
    """Every source gives the same ids and bit-identical matrix; returns them."""
    ids, matrix = load_features(output, model, source="json")
    for source in ("parquet", "hdf5", "auto"):
        other_ids, other = load_features(output, model, source=source)
        assert other_ids == ids, source
        assert other.dtype == np.float32 and np.array_equal(other, matrix), source
    return ids, matrix


def test_integer_ids_round_trip_sorted_numerically(tmp_path):
    vectors = random_vectors("clip-image", ["10", "2", "33", "1", "7"])
    write_features(tmp_path, "clip-image", vectors)
    ids, matrix = assert_same_everywhere(tmp_path, "clip-image")
    assert ids == ["1", "2", "7", "10", "33"]
    assert matrix.shape == (5, 512)
    assert np.array_equal(matrix, np.stack([vectors[i] for i in ids]))


def test_ids_with_leading_zeros_stay_distinct_strings(tmp_path):
    vectors = random_vectors("minilm", ["12", "012", "0012", "3"])
    write_features(tmp_path, "minilm", vectors)
    assert pq.read_table(tmp_path / "text_embeddings_minilm.parquet").column("movie_id").to_pylist() == \
        ["0012", "012", "12", "3"]
    ids, matrix = assert_same_everywhere(tmp_path, "minilm")
    assert ids == ["0012", "012", "12", "3"]
    assert np.array_equal(matrix, np.stack([vectors[i] for i in ids]))


def test_string_ids_round_trip(tmp_path):
    # "a-b.json" sorts before "a.json" by file name, but "a" < "a-b" as ids
    vectors = random_vectors("r2p1d", ["tt2", "a-b", "a", "B_1", "5"])
    write_features(tmp_path, "r2p1d", vectors)
    ids, matrix = assert_same_everywhere(tmp_path, "r2p1d")
    assert ids == sorted(vectors)
    assert np.array_equal(matrix, np.stack([vectors[i] for i in ids]))


def test_audio_values_are_the_rounded_json_values(tmp_path):
    vectors = random_vectors("vggish", ["1", "2"])
    write_features(tmp_path, "vggish", vectors)
    _, matrix = assert_same_everywhere(tmp_path, "vggish")
    assert np.allclose(matrix, np.stack(list(vectors.values())), atol=1e-6)


def test_corrupt_json_is_left_out_of_every_source(tmp_path):
    write_features(tmp_path, "minilm", random_vectors("minilm", ["1", "2", "3"]), consolidated=False)
    (tmp_path / "minilm" / "2.json").write_text('{"2": [1.0, 2.0')
    consolidate(tmp_path, MODELS["minilm"])
    ids, _ = assert_same_everywhere(tmp_path, "minilm")
    assert ids == ["1", "3"]


def test_empty_folder(tmp_path):
    write_features(tmp_path, "mpnet", {})
    ids, matrix = assert_same_everywhere(tmp_path, "mpnet")
    assert ids == [] and matrix.shape == (0, 768)


def set_mtime(path, seconds):
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


def test_auto_reads_a_consolidated_table_only_while_it_is_up_to_date(tmp_path):
    store = write_features(tmp_path, "minilm", random_vectors("minilm", ["1", "2"]))
    parquet, h5 = tmp_path / "text_embeddings_minilm.parquet", tmp_path / "text_embeddings_minilm.h5"
    assert choose_source(tmp_path, "minilm") == "hdf5"

    store.write("3", np.ones(384, np.float32))  # a new id after consolidation
    assert choose_source(tmp_path, "minilm") == "json"
    assert load_features(tmp_path, "minilm")[0] == ["1", "2", "3"]

    consolidate(tmp_path, store.info)
    assert choose_source(tmp_path, "minilm") == "hdf5"
    h5.unlink()
    assert choose_source(tmp_path, "minilm") == "parquet"

    # a JSON file edited in place (the folder itself unchanged) is newer than the table
    for path in (store.folder, *store.folder.iterdir()):
        set_mtime(path, 1_000_000)
    set_mtime(parquet, 2_000_000)
    assert choose_source(tmp_path, "minilm") == "parquet"
    (store.folder / "1.json").write_text(json.dumps({"1": [0.5] * 384}))
    assert choose_source(tmp_path, "minilm") == "json"
    ids, matrix = load_features(tmp_path, "minilm")
    assert ids == ["1", "2", "3"] and np.all(matrix[0] == 0.5)


@pytest.mark.parametrize("link", ["dangling", "looping"])
def test_a_broken_json_link_does_not_make_a_stale_table_current(tmp_path, link):
    store = write_features(tmp_path, "minilm", random_vectors("minilm", ["1", "2"]))
    set_mtime(tmp_path / "text_embeddings_minilm.h5", 1_000_000)
    set_mtime(tmp_path / "text_embeddings_minilm.parquet", 1_000_000)
    store.write("3", np.ones(384, np.float32))  # added by a --no-consolidate run
    (store.folder / "9.json").symlink_to(store.folder / ("9.json" if link == "looping" else "gone.json"))
    assert choose_source(tmp_path, "minilm") == "json"
    assert load_features(tmp_path, "minilm")[0] == ["1", "2", "3"]
    [summary] = list_models(tmp_path)
    assert (summary.count, summary.source) == (3, "json")


def test_tables_alone_are_used_when_the_json_folder_is_gone(tmp_path):
    vectors = random_vectors("vit", ["4", "3"])
    store = write_features(tmp_path, "vit", vectors)
    for file in store.folder.iterdir():
        file.unlink()
    store.folder.rmdir()
    assert choose_source(tmp_path, "vit") == "hdf5"
    ids, matrix = load_features(tmp_path, "vit")
    assert ids == ["3", "4"] and np.array_equal(matrix, np.stack([vectors["3"], vectors["4"]]))
    with pytest.raises(UserError, match="no JSON folder"):
        load_features(tmp_path, "vit", source="json")


def test_model_by_name_or_folder_and_errors(tmp_path):
    write_features(tmp_path, "whisper", random_vectors("whisper", ["1"]))
    by_name, by_folder = load_features(tmp_path, "whisper"), load_features(tmp_path, "audio_whisper")
    assert by_name[0] == by_folder[0] and np.array_equal(by_name[1], by_folder[1])
    with pytest.raises(UserError, match="unknown model 'bert'"):
        load_features(tmp_path, "bert")
    with pytest.raises(UserError, match="no features of ast"):
        load_features(tmp_path, "ast")
    with pytest.raises(UserError, match="unknown source"):
        load_features(tmp_path, "whisper", source="csv")


def test_as_dataframe(tmp_path):
    vectors = random_vectors("clip-text", ["2", "1"])
    write_features(tmp_path, "clip-text", vectors)
    frame = m3l.as_dataframe(tmp_path, "clip-text")
    assert frame.index.name == "movie_id" and list(frame.index) == ["1", "2"]
    assert frame.shape == (2, 512) and (frame.dtypes == np.float32).all()
    assert np.array_equal(frame.loc["2"].to_numpy(), vectors["2"])


def test_list_models_coverage_against_the_runs_or_a_catalogue(tmp_path):
    write_features(tmp_path, "minilm", random_vectors("minilm", ["1", "2", "3"]),
                   failed={"4": "CUDA out of memory"}, skipped={"x y": "invalid id", "1": "duplicate id"})
    write_features(tmp_path, "vgg", random_vectors("vgg", ["1"]), consolidated=False)
    summaries = {s.name: s for s in m3l.list_models(tmp_path)}
    assert set(summaries) == {"minilm", "vgg"}
    minilm, vgg = summaries["minilm"], summaries["vgg"]
    assert (minilm.dim, minilm.count, minilm.expected, minilm.source) == (384, 3, 5, "hdf5")
    assert minilm.coverage == pytest.approx(3 / 5)
    assert (vgg.modality, vgg.dim, vgg.count, vgg.coverage, vgg.source) == ("image", 4096, 1, 1.0, "json")

    per_modality = {s.name: s for s in list_models(tmp_path, {"text": ["1", "2", "3", "4"], "image": ["1", "2"]})}
    assert per_modality["minilm"].coverage == pytest.approx(3 / 4)
    assert per_modality["vgg"].coverage == pytest.approx(1 / 2)
    assert list_models(tmp_path, ["1", "01", "9"])[0].coverage == pytest.approx(1 / 3)  # "01" is not id 1


def test_missing_reasons_come_from_the_last_log_line(tmp_path):
    store = write_features(tmp_path, "ast", random_vectors("ast", ["1"]), failed={"2": "first try"})
    store.fail("2", "cannot decode audio: Invalid data found")
    store.skip("3", "empty or missing plot")
    store.log("1", "warning", "kept with a caveat")
    (tmp_path / "log_audio_ast.txt").open("a").write("garbage\n")
    entries = read_log(tmp_path, "ast")
    assert [e.status for e in entries] == ["failed", "failed", "skipped", "warning"]
    assert entries[1].reason == "cannot decode audio: Invalid data found"
    assert missing_reasons(entries, ["2", "3", "5"]) == {
        "cannot decode audio: Invalid data found": ["2"],
        "empty or missing plot": ["3"],
        "no log entry (never attempted?)": ["5"],
    }


def test_real_minilm_run_round_trips(minilm_output):
    ids, matrix = assert_same_everywhere(minilm_output, "minilm")
    assert ids == ["1", "2", "3", "4"] and matrix.shape == (4, 384)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)  # MiniLM normalises
    assert np.array_equal(matrix[2], read_vector(minilm_output / "minilm", "3"))
    [summary] = m3l.list_models(minilm_output)
    assert (summary.name, summary.count, summary.coverage) == ("minilm", 4, 1.0)
