"""Our poster vectors equal the recipe spelled out one image at a time, whatever the batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.image.helpers import MODELS, extract, log_lines, tsv_map
from tests.image.media import odd_posters, write_photos
from tests.image.reference import Reference, poster_rgb
from tests.outputs import read_vector


@pytest.fixture(scope="module")
def posters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str | None]]:
    """Real photos (no warning expected) and every odd-but-usable image mode (with its warning)."""
    folder = tmp_path_factory.mktemp("posters")
    return {**{movie_id: (path, None) for movie_id, path in write_photos(folder).items()}, **odd_posters(folder)}


@pytest.fixture(scope="module")
def catalogue(posters, tmp_path_factory) -> Path:
    """A TSV map, since an animated GIF is not a poster file name the folder scan takes."""
    return tsv_map(tmp_path_factory.mktemp("catalogue") / "posters.tsv", {i: p for i, (p, _) in posters.items()})


@pytest.fixture(scope="module")
def batched(image_store, catalogue, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("batched")
    assert extract(image_store, catalogue, output, "--batch-size", 5, "--workers", 2) == 0
    return output


@pytest.fixture(scope="module")
def reference(image_store) -> Reference:
    return Reference(image_store)


@pytest.mark.parametrize("model", MODELS)
def test_every_vector_equals_the_recipe(model, batched, posters, reference):
    for movie_id, (path, _) in posters.items():
        expected = reference.vector(model, poster_rgb(path))
        np.testing.assert_allclose(read_vector(batched / model, movie_id), expected, rtol=0, atol=1e-5,
                                   err_msg=movie_id)


@pytest.mark.parametrize("model", MODELS)
def test_odd_images_are_logged_as_warnings_and_photos_not_at_all(model, batched, posters):
    for movie_id, (_, phrase) in posters.items():
        lines = log_lines(batched, model, movie_id)
        if phrase is None:
            assert lines == []
        else:
            assert lines and all(line.startswith("warning ") for line in lines), (movie_id, lines)
            assert any(phrase in line for line in lines), (movie_id, lines)


def test_batch_size_and_workers_do_not_change_the_vectors(image_store, catalogue, batched, posters, tmp_path):
    assert extract(image_store, catalogue, tmp_path, "--batch-size", 1, "--workers", 0) == 0
    for model in MODELS:
        for movie_id in posters:
            np.testing.assert_allclose(read_vector(tmp_path / model, movie_id), read_vector(batched / model, movie_id),
                                       rtol=0, atol=1e-5, err_msg=f"{model} {movie_id}")


def test_exif_rotate_turns_the_poster_upright(image_store, posters, reference, tmp_path):
    path, _ = posters["exif"]
    catalogue = tsv_map(tmp_path / "exif.tsv", {"exif": path})
    assert extract(image_store, catalogue, tmp_path / "out", "--models", "vit", "--exif-rotate") == 0
    upright = poster_rgb(path, exif_rotate=True)
    assert upright.size == poster_rgb(path).size[::-1]
    np.testing.assert_allclose(read_vector(tmp_path / "out" / "vit", "exif"), reference.vector("vit", upright),
                               rtol=0, atol=1e-5)
    assert log_lines(tmp_path / "out", "vit", "exif") == ["warning EXIF orientation 6 applied (--exif-rotate)"]
