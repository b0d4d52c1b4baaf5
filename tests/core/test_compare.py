import json

import numpy as np
import pytest

from tests.core.sample_outputs import random_vectors, write_features
from tests.published import TOP, write_published
from tests.testlib import run_script

IDS = [str(i) for i in range(1, 9)]


def compare(a, b, *flags):
    return run_script("compare.py", a, b, *flags)


@pytest.fixture
def minilm():
    return random_vectors("minilm", IDS, seed=3)


def nudged(vectors, movie_id, relative):
    """A copy with one vector's largest value moved by `relative` of its magnitude."""
    vector = vectors[movie_id].copy()
    k = int(np.argmax(np.abs(vector)))
    vector[k] += relative * abs(vector[k])
    return {**vectors, movie_id: vector}


def test_a_re_extraction_equal_to_the_published_folder_passes(tmp_path, minilm):
    write_features(tmp_path / "ours", "minilm", minilm)
    published = write_published(tmp_path / TOP, "minilm", minilm)
    result = compare(tmp_path / "ours", published)
    assert result.returncode == 0, result.stdout + result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:3] == ["model", "dim", "shared"]
    assert row.split()[:5] == ["minilm", "384", "8", "0", "0"] and "0.0001 (fp32)" in row
    assert result.stdout.splitlines()[-1].startswith("compare: OK")


def test_one_vector_beyond_tolerance_fails_and_is_named(tmp_path, minilm):
    write_features(tmp_path / "ours", "minilm", nudged(minilm, "5", 1e-3))
    published = write_published(tmp_path / TOP, "minilm", minilm)
    result = compare(tmp_path / "ours" / "minilm", published, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    (model,) = report["models"]
    assert not report["ok"] and model["over_tolerance"] == 1 and model["worst_ids"] == ["5"]
    assert model["max_rel"] == pytest.approx(1e-3, rel=1e-3) and model["min_cosine"] < 1
    table = compare(tmp_path / "ours" / "minilm", published)
    assert table.returncode == 1 and "beyond tolerance: minilm (1 id)" in table.stdout.splitlines()[-1]
    assert table.stdout.splitlines()[1].split()[-1] == "5"
    assert compare(tmp_path / "ours" / "minilm", published, "--tolerance", "minilm=2e-3").returncode == 0


def test_ids_on_one_side_only_are_listed_and_disjoint_ones_compare_nothing(tmp_path, minilm):
    write_features(tmp_path / "ours", "minilm", {k: minilm[k] for k in IDS[:6]})
    published = write_published(tmp_path / TOP, "minilm", {k: minilm[k] for k in IDS[2:]})
    result = compare(tmp_path / "ours", published)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "minilm: only in A: 1, 2" in result.stdout and "minilm: only in B: 7, 8" in result.stdout
    disjoint = write_published(tmp_path / "other" / TOP, "minilm", random_vectors("minilm", ["100", "101"]))
    result = compare(tmp_path / "ours", disjoint)
    assert result.returncode == 1
    assert "no id in both, nothing compared: minilm" in result.stdout.splitlines()[-1]


def test_different_dimensions_and_unreadable_folders_are_one_error_line(tmp_path, minilm):
    ours = write_published(tmp_path / "a" / TOP, "minilm", minilm)
    other = write_published(tmp_path / "b" / TOP, "mpnet", random_vectors("mpnet", IDS))
    for result in (compare(ours, other), compare(ours, tmp_path / "nowhere"),
                   compare(ours, ours, "--tolerance", "minilm=-1")):
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "384 values" in compare(ours, other).stderr


def test_an_fp16_recipe_model_is_held_to_its_own_tolerance(tmp_path):
    """Published Whisper vectors came from float16 autocast on a GPU: an fp32 re-extraction differs by
    about 1e-3 of a vector's scale and passes; the same difference fails at the fp32 tolerance."""
    whisper = random_vectors("whisper", IDS, seed=4)
    published = write_published(tmp_path / TOP, "whisper", whisper)
    write_features(tmp_path / "ours", "whisper", nudged(whisper, "3", 1e-3))
    result = compare(tmp_path / "ours", published)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0.005 (fp16)" in result.stdout.splitlines()[1]
    strict = compare(tmp_path / "ours" / "audio_whisper", published, "--tolerance", "whisper=1e-4")
    assert strict.returncode == 1 and "0.0001 (given)" in strict.stdout
