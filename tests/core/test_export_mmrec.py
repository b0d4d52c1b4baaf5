import numpy as np
import pytest

from tests.core.sample_outputs import random_vectors, write_features
from tests.testlib import run_script

# MMRec's i_id_mapping.csv: movie id, item index; shuffled, with an item (6) that has no vector
ITEM_MAP = [("5", 0), ("3", 1), ("6", 2), ("1", 3), ("4", 4), ("2", 5)]


@pytest.fixture
def output(tmp_path):
    output = tmp_path / "features"
    minilm = random_vectors("minilm", ["1", "2", "3", "4", "5", "99"], seed=1)  # 99 is not in the map
    vgg = random_vectors("vgg", ["1", "3"], seed=2)
    write_features(output, "minilm", minilm)
    write_features(output, "vgg", vgg, consolidated=False)
    return output, {"minilm": minilm, "vgg": vgg}


def write_map(path, rows, header="asin\titemID", newline="\n"):
    path.write_text(newline.join([header, *(f"{movie}\t{index}" for movie, index in rows)]) + newline)
    return path


def export(output, item_map, target, *flags):
    return run_script("export_mmrec.py", "--output", output, "--item-map", item_map, "--to", target, *flags)


def expected_rows(vectors, fill):
    return np.stack([vectors[movie] if movie in vectors else fill for movie, _ in sorted(ITEM_MAP, key=lambda r: r[1])])


def test_rows_follow_the_item_index_and_missing_items_are_zeros(output, tmp_path):
    output, vectors = output
    result = export(output, write_map(tmp_path / "i_id_mapping.csv", ITEM_MAP), tmp_path / "mmrec")
    assert result.returncode == 0, result.stderr
    minilm = np.load(tmp_path / "mmrec" / "text" / "minilm.npy")
    vgg = np.load(tmp_path / "mmrec" / "image" / "vgg.npy")
    assert minilm.dtype == np.float32 and minilm.shape == (6, 384) and vgg.shape == (6, 4096)
    assert np.array_equal(minilm, expected_rows(vectors["minilm"], np.zeros(384)))
    assert np.array_equal(vgg, expected_rows(vectors["vgg"], np.zeros(4096)))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("text/minilm: 5/6 items have a vector (83.3%), 1 filled, 1 vectors not in the item map")
    assert lines[1].startswith("image/vgg: 2/6 items have a vector (33.3%), 4 filled, 0 vectors not in the item map")


def test_mean_fill_and_any_column_names_crlf_leading_zeros(output, tmp_path):
    output, vectors = output
    rows = [("005" if movie == "5" else movie, index) for movie, index in ITEM_MAP]
    item_map = write_map(tmp_path / "map.tsv", rows, header="movie\tidx", newline="\r\n")
    result = export(output, item_map, tmp_path / "mmrec", "--missing", "mean", "--models", "minilm")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "mmrec" / "image").exists()
    found = [vectors["minilm"][movie] for movie in ("3", "1", "4", "2")]  # "005" is another id than "5"
    mean = np.mean(found, axis=0, dtype=np.float32)
    known = {movie: vector for movie, vector in vectors["minilm"].items() if movie != "5"}
    assert np.allclose(np.load(tmp_path / "mmrec" / "text" / "minilm.npy"), expected_rows(known, mean), atol=1e-6)


@pytest.mark.parametrize("content, message", [
    ("asin\titemID\n1\t0\n2\t0\n", "line 3: item index 0 appears twice"),
    ("asin\titemID\n1\t0\n1\t1\n", "line 3: movie id 1 already mapped on line 2"),
    ("asin\titemID\n1\t0\n2\t2\n", "indices must be 0..1 without gaps, but 1 is missing"),
    ("asin\titemID\n1\t0\n2\tx\n", "line 3: item index 'x' is not a non-negative integer"),
    ("asin\titemID\n1\t-1\n", "item index '-1' is not a non-negative integer"),
    ("asin\titemID\n1\t0\n2\n", "line 3: expected movie_id<TAB>item_index"),
    ("asin\titemID\n", "has no rows under its header"),
    ("asin\titemID\ntt1\t0\ntt2\t1\n", "no movie id of"),
])
def test_unalignable_maps_are_refused_with_one_line(output, tmp_path, content, message):
    output, _ = output
    item_map = tmp_path / "map.tsv"
    item_map.write_text(content)
    result = export(output, item_map, tmp_path / "mmrec")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert not (tmp_path / "mmrec").exists()


def test_missing_inputs(tmp_path):
    result = export(tmp_path / "nothing", tmp_path / "map.tsv", tmp_path / "mmrec")
    assert result.returncode == 2 and "cannot read item map" in result.stderr
    write_map(tmp_path / "map.tsv", ITEM_MAP)
    result = export(tmp_path / "nothing", tmp_path / "map.tsv", tmp_path / "mmrec")
    assert result.returncode == 2 and "no features under" in result.stderr
    result = export(tmp_path / "nothing", tmp_path / "map.tsv", tmp_path / "mmrec", "--models", "bert")
    assert result.returncode == 2 and "unknown model 'bert'" in result.stderr


def test_a_target_that_is_no_folder_is_one_line(output, tmp_path):
    output, _ = output
    item_map = write_map(tmp_path / "i_id_mapping.csv", ITEM_MAP)
    (tmp_path / "file.npy").write_bytes(b"keep")
    (tmp_path / "mmrec" / "image").mkdir(parents=True)
    (tmp_path / "mmrec" / "text").write_bytes(b"keep")
    for target, message in ((tmp_path / "file.npy", f"error: --to {tmp_path / 'file.npy'} is a regular file, "
                                                     "not a folder\n"),
                            (tmp_path / "mmrec", f"error: the export folder {tmp_path / 'mmrec' / 'text'} is a "
                                                 "regular file, not a folder\n")):
        result = export(output, item_map, target)
        assert (result.returncode, result.stderr) == (2, message)
    assert (tmp_path / "file.npy").read_bytes() == (tmp_path / "mmrec" / "text").read_bytes() == b"keep"
    assert list((tmp_path / "mmrec" / "image").iterdir()) == []


def test_files_carry_m3l_mmrec_names_and_spec_models_their_folder_name(tmp_path):
    from m3l.models import spec
    from m3l.store.consolidate import consolidate
    from m3l.store.writer import FeatureStore

    output = tmp_path / "features"
    for model in ("clip-text", "clip-image", "whisper"):
        write_features(output, model, random_vectors(model, ["1", "3"]))
    info = spec.parse("st:BAAI/bge-small-en-v1.5").with_dim(8)
    store = FeatureStore(output, info)
    store.write("1", np.ones(8, dtype=np.float32))
    consolidate(output, store.info)
    result = export(output, write_map(tmp_path / "map.tsv", ITEM_MAP), tmp_path / "mmrec")
    assert result.returncode == 0, result.stderr
    written = sorted(str(path.relative_to(tmp_path / "mmrec")) for path in (tmp_path / "mmrec").rglob("*.npy"))
    assert written == ["audio/whisper.npy", "image/clip_image.npy", "text/clip_text.npy",
                       "text/st--BAAI--bge-small-en-v1.5.npy"]
    assert np.load(tmp_path / "mmrec" / "text" / "st--BAAI--bge-small-en-v1.5.npy").shape == (6, 8)


def test_a_published_folder_exports_directly_with_the_dataset_config_lines(tmp_path):
    from tests.published import TOP, write_published

    vectors = {model: random_vectors(model, ["1", "2", "3"], seed=5) for model in ("minilm", "clip-image")}
    for model, chosen in vectors.items():
        write_published(tmp_path / TOP, model, chosen)
    item_map = write_map(tmp_path / "map.tsv", ITEM_MAP)
    for modality in ("1_text_feat", "2_image_feat"):
        result = export(tmp_path / TOP / modality, item_map, tmp_path / "mmrec")
        assert result.returncode == 0, result.stderr
    assert np.array_equal(np.load(tmp_path / "mmrec" / "text" / "minilm.npy"),
                          expected_rows(vectors["minilm"], np.zeros(384)))
    result = export(tmp_path / TOP / "2_image_feat", item_map, tmp_path / "mmrec", "--pair", "clip-image,clip-image")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mmrec" / "mmrec_features.yaml").read_text() == (
        'vision_feature_file: "image/clip_image.npy"\ntext_feature_file: "image/clip_image.npy"\n')
    refused = export(tmp_path / TOP / "1_text_feat", item_map, tmp_path / "other", "--pair", "vit,minilm")
    assert refused.returncode == 2 and "vit is not among the exported models" in refused.stderr
    assert not (tmp_path / "other").exists()


def test_elliot_format_writes_a_folder_of_id_npy_per_model(output, tmp_path):
    output, vectors = output
    result = run_script("export_mmrec.py", "--output", output, "--to", tmp_path / "elliot", "--format", "elliot")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "elliot" / "text" / "minilm"
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{i}.npy" for i in vectors["minilm"])
    for movie_id, vector in vectors["minilm"].items():
        assert np.array_equal(np.load(folder / f"{movie_id}.npy"), vector)
    assert sorted(path.name for path in (tmp_path / "elliot" / "image" / "vgg").iterdir()) == ["1.npy", "3.npy"]
    only_mapped = export(output, write_map(tmp_path / "map.tsv", ITEM_MAP), tmp_path / "mapped", "--format", "elliot")
    assert only_mapped.returncode == 0, only_mapped.stderr
    assert "99.npy" not in {path.name for path in (tmp_path / "mapped" / "text" / "minilm").iterdir()}
    no_map = run_script("export_mmrec.py", "--output", output, "--to", tmp_path / "none")
    assert no_map.returncode == 2 and "--item-map is needed for --format mmrec" in no_map.stderr
