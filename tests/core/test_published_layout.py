"""The published M3L layout (`features_json_format/{1_text_feat,2_image_feat,3_video_feat,4_audio_feat}/<model>/`,
pretty JSON, no tables, no provenance) is read by every reader, under every published folder name, recognised
by the root's name or asked for with --layout m3l / layout="m3l"."""

import shutil

import numpy as np
import pytest

from m3l import list_models, load_features
from m3l.models import MODELS
from tests.published import PUBLISHED, TOP, write_published
from tests.testlib import run_script

IDS = ["1", "2", "10"]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Every published model folder under features_json_format/, with three look-alike vectors each."""
    top = tmp_path_factory.mktemp("m3l") / TOP
    rng = np.random.default_rng(11)
    vectors = {model: {i: rng.standard_normal(MODELS[model].dim).astype(np.float32) for i in IDS}
               for model in PUBLISHED}
    for model, chosen in vectors.items():
        write_published(top, model, chosen)
    return top, vectors


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_load_features_reads_each_published_folder(published, model, tmp_path):
    top, vectors = published
    modality_root = top / PUBLISHED[model].split("/")[0]
    expected = np.stack([vectors[model][i] for i in IDS])
    for root, layout in ((top, None), (modality_root, None), (top, "m3l")):
        ids, matrix = load_features(root, model, layout=layout)
        assert ids == IDS and np.array_equal(matrix, expected)
    renamed = tmp_path / "elsewhere"
    top.rename(renamed)
    try:
        assert load_features(renamed, model, layout="m3l")[0] == IDS
    finally:
        renamed.rename(top)


def test_list_verify_report_compare_and_export_take_the_published_root(published, tmp_path):
    top, _ = published
    assert sorted(summary.name for summary in list_models(top)) == sorted(PUBLISHED)
    verified = run_script("verify.py", "--output", top)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "(12 models checked)" in verified.stdout.splitlines()[-1]
    assert "4_audio_feat/whisper" in verified.stdout or "whisper (audio" in verified.stdout
    report = run_script("report.py", "--output", top, "--html", tmp_path / "report.html")
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "report.html").read_text()
    assert all(model in html for model in PUBLISHED)
    compared = run_script("compare.py", top, top / "4_audio_feat")
    assert compared.returncode == 0 and "compare: OK (3 models" in compared.stdout, compared.stdout + compared.stderr
    (tmp_path / "map.tsv").write_text("movie_id\titem\n10\t0\n1\t1\n")
    exported = run_script("export_mmrec.py", "--output", top, "--item-map", tmp_path / "map.tsv", "--to",
                          tmp_path / "mmrec")
    assert exported.returncode == 0, exported.stderr
    written = sorted(str(path.relative_to(tmp_path / "mmrec")) for path in (tmp_path / "mmrec").rglob("*.npy"))
    assert written == ["audio/ast.npy", "audio/vggish.npy", "audio/whisper.npy", "image/clip_image.npy",
                       "image/vgg.npy", "image/vit.npy", "text/clip_text.npy", "text/minilm.npy", "text/mpnet.npy",
                       "video/mvit.npy", "video/r2p1d.npy", "video/slowfast.npy"]


def test_consolidate_writes_the_tables_beside_each_published_folder(published, tmp_path):
    top, vectors = published
    copy = tmp_path / TOP
    shutil.copytree(top, copy)
    result = run_script("consolidate.py", "--output", copy)
    assert result.returncode == 0, result.stderr
    assert (copy / "4_audio_feat" / "audio_embeddings_whisper.h5").is_file()
    assert (copy / "1_text_feat" / "text_embeddings_clip-text.parquet").is_file()
    ids, matrix = load_features(copy, "whisper", source="hdf5")
    assert ids == IDS and np.array_equal(matrix, np.stack([vectors["whisper"][i] for i in IDS]))


def test_verify_names_the_published_folders(published):
    top, _ = published
    result = run_script("verify.py", "--output", top / "4_audio_feat")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines() if "-d): expected" in line] == \
        ["whisper", "ast", "vggish"]
