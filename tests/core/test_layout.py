"""The output layout's one owner: models whose names start alike never touch each other's files, every
reader finds a spec model under an output root by its spec or its folder, with the dimension of its marker,
and a table format registered beside HDF5 and Parquet is written, read and audited like them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from m3l.models import spec
from m3l.readers.audit import audit_model
from m3l.readers.features import load_features, provenance
from m3l.readers.mmrec import export
from m3l.store.consolidate import consolidate
from m3l.store.layout import ModelLayout
from m3l.store.locks import model_lock
from m3l.store.provenance import record
from m3l.store.tables import TABLE_FORMATS, TableFormat
from m3l.store.writer import FeatureStore

SPEC = "st:org/model@v1"
LONGER = "st:org/model@v1.1"  # a real pair: nomic-embed-text-v1 and nomic-embed-text-v1.5
VECTORS = {"1": np.arange(4, dtype=np.float32), "2": np.ones(4, dtype=np.float32)}


def spec_features(output, name=SPEC, consolidated=True) -> FeatureStore:
    """A spec model's folder as a run leaves it: marker with its dimension, provenance record, vectors."""
    store = FeatureStore(output, spec.parse(name))
    store.claim(record(name, "w" * 64, 1, "fp32", "cpu"), allow_mixed=False)
    for movie_id, vector in VECTORS.items():
        store.write(movie_id, vector)
    if consolidated:
        consolidate(output, store.info)
    return store


def in_flight(layout: ModelLayout) -> list:
    """A temporary of each file the model writes, as a run still writing them has."""
    layout.folder.mkdir(parents=True, exist_ok=True)
    paths = [path.with_name(f".{path.name}.k3j9x0a1.tmp") for path in [*layout.tables.values(), layout.index,
                                                                        layout.vector("7")]]
    for path in paths:
        path.write_bytes(b"partial")
    return paths


def test_one_models_lock_leaves_the_temporaries_of_a_model_named_longer_alone(tmp_path):
    short, longer = ModelLayout(tmp_path, spec.parse(SPEC)), ModelLayout(tmp_path, spec.parse(LONGER))
    theirs, ours = in_flight(longer), in_flight(short)
    assert sorted(short.temporaries()) == sorted(ours) and sorted(longer.temporaries()) == sorted(theirs)
    with model_lock(tmp_path, short.info):
        assert all(path.exists() for path in theirs) and not any(path.exists() for path in ours)
    strays = audit_model(tmp_path, longer.info, None).findings
    assert sorted(next(names for problem, names in strays.items() if "temporary" in problem)) == sorted(
        path.name for path in theirs)


@pytest.mark.parametrize("consolidated", [False, True], ids=["json", "tables"])
@pytest.mark.parametrize("named_by", ["spec", "folder"])
def test_a_spec_model_exports_to_mmrec_by_spec_or_folder(tmp_path, consolidated, named_by):
    store = spec_features(tmp_path / "out", consolidated=consolidated)
    item_map = tmp_path / "i_id_mapping.csv"
    item_map.write_text("movie\titem\n2\t0\n3\t1\n1\t2\n")
    name = SPEC if named_by == "spec" else store.info.folder
    [exported] = export(tmp_path / "out", item_map, tmp_path / "mmrec", [name])
    np.testing.assert_array_equal(np.load(exported.path), np.stack([VECTORS["2"], np.zeros(4), VECTORS["1"]]))


@pytest.mark.parametrize("consolidated", [False, True], ids=["json", "tables"])
def test_provenance_and_features_of_a_spec_model_by_its_folder(tmp_path, consolidated):
    store = spec_features(tmp_path / "out", consolidated=consolidated)
    for name in (SPEC, store.info.folder):
        assert provenance(tmp_path / "out", name)["provenance"]["model"] == SPEC
        ids, matrix = load_features(tmp_path / "out", name)
        assert ids == ["1", "2"] and matrix.shape == (2, 4)


class NpzTable(TableFormat):
    """A third table format, as a user would add one: keys and vectors in one .npz written at close."""

    name, suffix = "npz", ".npz"

    class Writer:
        def __init__(self, path, metadata):
            self.path, self.metadata, self.keys, self.vectors = path, dict(metadata), [], []

        def write(self, keys, vectors):
            self.keys += [str(key) for key in keys]
            self.vectors.append(np.array(vectors, dtype=np.float32))

        def close(self):
            with open(self.path, "wb") as handle:
                np.savez(handle, ids=np.array(self.keys), vectors=np.concatenate(self.vectors),
                         metadata=json.dumps(self.metadata))

    def writer(self, path, count, dim, numeric, metadata):
        return self.Writer(path, metadata)

    def chunks(self, path, dim, vectors=True):
        with np.load(path) as data:
            yield list(data["ids"]), data["vectors"] if vectors else None

    def count(self, path, dim):
        with np.load(path) as data:
            return len(data["ids"])

    def metadata(self, path):
        with np.load(path) as data:
            return json.loads(str(data["metadata"]))


def test_a_registered_table_format_is_written_read_and_audited_like_the_others(tmp_path, monkeypatch):
    monkeypatch.setitem(TABLE_FORMATS, "npz", NpzTable())
    store = spec_features(tmp_path, consolidated=False)
    (tmp_path / store.info.folder / "3.json").write_text('{"3": [1, 2]}')  # damaged: left out of every table
    tables = consolidate(tmp_path, store.info)
    assert [path.name for path in tables] == [f"text_embeddings_{store.info.folder}{suffix}"
                                              for suffix in (".h5", ".parquet", ".npz")]
    ids, matrix = load_features(tmp_path, SPEC, source="npz")
    assert ids == ["1", "2"] and np.array_equal(matrix, np.stack([VECTORS["1"], VECTORS["2"]]))
    assert provenance(tmp_path, SPEC, source="npz")["provenance"]["model"] == SPEC
    audit = audit_model(tmp_path, store.info, None)
    assert list(audit.findings) == ["wrong length (not 4)"]
    tables[-1].write_bytes(b"damaged")
    assert "text_embeddings_st--org--model@v1.npz cannot be read" in audit_model(tmp_path, store.info, None).findings
