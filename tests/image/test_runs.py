"""Whole runs: kill and resume, consolidation, the README's demo, command-line mistakes."""

from __future__ import annotations

import os
import shutil
import subprocess

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.image.helpers import MODELS, extract
from tests.image.media import write_photos
from m3l import load_features
from tests.image.reference import Reference, poster_rgb
from tests.outputs import read_vector
from tests.testlib import DATA, REPO, run_script


def consolidated(output, model: str) -> tuple[list, np.ndarray, list, np.ndarray]:
    table = pq.read_table(output / f"image_embeddings_{model}.parquet")
    with h5py.File(output / f"image_embeddings_{model}.h5") as handle:
        h5_ids, h5_vectors = handle["movie_ids"][:].tolist(), handle["embeddings"][:]
    return table["movie_id"].to_pylist(), np.stack(table["embedding"].to_numpy(zero_copy_only=False)), h5_ids, h5_vectors


@pytest.fixture
def numbered_posters(tmp_path):
    """Posters named by MovieLens-style integer ids, in an order where text sorting would be wrong."""
    folder = tmp_path / "posters"
    folder.mkdir()
    for movie_id, path in zip(("10", "2", "1"), write_photos(folder).values()):
        path.rename(folder / f"{movie_id}{path.suffix}")
    for index in range(3, 9):  # a few more, so that a run can be killed part-way
        shutil.copy(folder / "2.png", folder / f"{index}.png")
    return folder


def test_consolidation_sorts_integer_ids_and_matches_the_json(image_store, numbered_posters, tmp_path):
    assert extract(image_store, numbered_posters, tmp_path, "--models", "clip-image,vit") == 0
    for model in ("clip-image", "vit"):
        ids, vectors, h5_ids, h5_vectors = consolidated(tmp_path, model)
        assert ids == h5_ids == [1, 2, 3, 4, 5, 6, 7, 8, 10]
        expected = np.stack([read_vector(tmp_path / model, str(movie_id)) for movie_id in ids])
        assert vectors.dtype == h5_vectors.dtype == np.float32
        np.testing.assert_array_equal(vectors, expected)
        np.testing.assert_array_equal(h5_vectors, expected)
    assert not (tmp_path / "image_embeddings_vgg.parquet").exists()


def test_layout_m3l_writes_the_published_folder_names_and_a_root_named_2_image_feat_is_read_so(
        image_store, tmp_path, capsys):
    posters = tmp_path / "posters"
    posters.mkdir()
    shutil.copy(DATA / "poster" / "1.jpg", posters)
    mine = tmp_path / "mine"
    assert extract(image_store, posters, mine, "--models", "vit", "--layout", "m3l") == 0
    assert (mine / "2_image_feat" / "vit" / "1.json").is_file() and not (mine / "vit").exists()
    shutil.copy(DATA / "poster" / "2.jpg", posters)
    capsys.readouterr()
    assert extract(image_store, posters, mine / "2_image_feat", "--models", "vit") == 0  # the layout by its name
    assert "vit: 1 done, 1 already done, 0 failed" in capsys.readouterr().out
    assert sorted(path.name for path in (mine / "2_image_feat" / "vit").glob("*.json")) == ["1.json", "2.json"]
    expected = np.stack([read_vector(mine / "2_image_feat" / "vit", movie_id) for movie_id in ("1", "2")])
    for source in ("json", "parquet", "hdf5"):
        for root, layout in ((mine, "m3l"), (mine / "2_image_feat", None)):
            ids, vectors = load_features(root, "vit", source=source, layout=layout)
            assert ids == ["1", "2"] and np.array_equal(vectors, expected)
    verified = run_script("verify.py", "--output", mine / "2_image_feat", "--posters", posters)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines()[-1] == "verify: OK (1 models checked)"


def test_make_demo_image_encodes_the_bundled_posters(image_store, tmp_path):
    output = tmp_path / "features"
    result = subprocess.run(["make", "--no-print-directory", "demo-image", f"MODELS_DIR={image_store}",
                             f"OUTPUT={output}"], cwd=REPO, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "M3L_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    reference = Reference(image_store)
    posters = sorted((DATA / "poster").iterdir())
    for model in MODELS:
        ids, vectors, h5_ids, _ = consolidated(output, model)
        assert ids == h5_ids == [1, 2, 3, 4]
        for poster, row in zip(posters, vectors):
            np.testing.assert_allclose(row, reference.vector(model, poster_rgb(poster)), rtol=0, atol=1e-5)
        assert f"{model}: 4 done, 0 already done, 0 failed" in result.stdout


def test_user_mistakes_end_with_one_line_and_status_2(image_store, tmp_path, capsys):
    assert extract(image_store, tmp_path / "nowhere", tmp_path / "out") == 2
    assert "not found" in capsys.readouterr().err
    empty_store = tmp_path / "empty-store"
    empty_store.mkdir()
    assert extract(empty_store, DATA / "poster", tmp_path / "out", "--models", "vgg") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(empty_store / "torchvision/vgg16-397923af.pth") in error
    assert extract(image_store, DATA / "poster", tmp_path / "out", "--models", "resnet") == 2
    assert "unknown image model 'resnet'" in capsys.readouterr().err
