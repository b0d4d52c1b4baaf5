"""Whole runs: the README demo, consolidation, resume, folder input, precision, user errors."""

import shutil
import subprocess
import sys

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from m3l.models import MODELS
from m3l.models.audio import WhisperEncoder
from tests.audio.stores import WHISPER
from tests.audio.helpers import FOLDERS, log_lines
from tests.audio.media import music
from tests.outputs import read_vectors
from tests.testlib import REPO, run_script

DIMS = {"whisper": 512, "ast": 768, "vggish": 128}


@pytest.fixture(scope="module")
def demo_output(audio_store, tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    result = subprocess.run(["make", "--no-print-directory", "demo-audio", f"MODELS_DIR={audio_store}",
                             f"OUTPUT={output}"], cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={"PATH": f"{REPO}/.venvs/audio/bin:/usr/bin:/bin", "M3L_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Cannot enable progress bars" not in result.stderr and "\r" not in result.stderr  # a log: no bars
    for folder in FOLDERS.values():
        assert f"{folder}: 4 done, 0 already done, 0 failed, 0 skipped" in result.stdout
    return output


@pytest.mark.parametrize("model", sorted(DIMS))
def test_the_demo_consolidates_every_model_sorted_by_id(demo_output, model):
    from_json = read_vectors(demo_output / FOLDERS[model])
    assert sorted(from_json) == ["1", "2", "3", "4"]
    table = pq.read_table(demo_output / f"audio_embeddings_{model}.parquet")
    assert str(table.schema.field("movie_id").type) == "int64"
    assert table.column("movie_id").to_pylist() == [1, 2, 3, 4]
    embeddings = np.asarray(table.column("embedding").to_pylist(), np.float32)
    with h5py.File(demo_output / f"audio_embeddings_{model}.h5") as handle:
        assert handle["movie_ids"][:].tolist() == [1, 2, 3, 4]
        assert handle["embeddings"].shape == (4, DIMS[model]) and handle["embeddings"].dtype == np.float32
        np.testing.assert_array_equal(handle["embeddings"][:], embeddings)
    np.testing.assert_array_equal(embeddings, np.stack([from_json[i] for i in ["1", "2", "3", "4"]]))
    assert log_lines(demo_output, model) == []


def test_a_rerun_resumes_and_recomputes_a_corrupt_file(audio_store, sounds, tmp_path):
    folder = tmp_path / "trailers"
    folder.mkdir()
    for movie_id, name in [("10", "lame.mp3"), ("11", "surround.flac"), ("12", "opus.mkv")]:
        shutil.copy(sounds[name], folder / f"{movie_id}{sounds[name].suffix}")
    (folder / "13.txt").write_text("not a trailer: wrong extension, so not in the catalogue")
    output = tmp_path / "out"
    common = ("--trailers", folder, "--models-dir", audio_store, "--output", output, "--models", "whisper")

    first = run_script("extract_audio.py", *common, "--limit", "2", "--no-consolidate")
    assert first.returncode == 0, first.stderr
    before = read_vectors(output / FOLDERS["whisper"])
    assert sorted(before) == ["10", "11"]
    untouched = (output / "audio_whisper" / "10.json").stat().st_mtime_ns
    (output / "audio_whisper" / "11.json").write_text('{"11": [0.5, 0.25')  # a crash mid-write, as it looks

    second = run_script("extract_audio.py", *common)
    assert second.returncode == 0, second.stderr
    assert "audio_whisper: 2 done, 1 already done, 0 failed" in second.stdout
    assert [line for line in log_lines(output, "whisper") if "recompute" in line] == [
        "audio_whisper 11 recompute existing 11.json: files that do not parse"]
    after = read_vectors(output / FOLDERS["whisper"])
    assert sorted(after) == ["10", "11", "12"]
    assert (output / "audio_whisper" / "10.json").stat().st_mtime_ns == untouched
    np.testing.assert_allclose(after["11"], before["11"], atol=1e-5)


def test_fp16_runs_whisper_under_half_precision_autocast(audio_store):
    paths = [audio_store / WHISPER]
    features = [WhisperEncoder(MODELS["whisper"], paths).preprocess(_soundtrack())[0]]
    results = {}
    for precision in ("auto", "fp32", "fp16"):
        encoder = WhisperEncoder(MODELS["whisper"], paths, "cpu", precision)
        encoder.load()
        results[precision] = encoder.embed(features)
    np.testing.assert_array_equal(results["auto"], results["fp32"])  # auto is float32 off CUDA
    difference = np.abs(results["fp16"] - results["fp32"]).max()
    assert 0 < difference < 0.05


def _soundtrack():
    from m3l.media.audio import Soundtrack

    return Soundtrack(music(2.0, 16000, 1)[0])


def test_a_model_missing_from_an_offline_store_is_a_one_line_error(tmp_path):
    result = run_script("extract_audio.py", "--models-dir", tmp_path / "empty", "--output", tmp_path / "out",
                        "--models", "vggish")
    assert result.returncode == 2
    assert result.stderr.startswith("error: model files missing from the store: ")
    assert "torchvggish/vggish-10086976.pth" in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_script_documents_its_input_flag():
    result = subprocess.run([sys.executable, str(REPO / "src" / "extract_audio.py"), "--help"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "--trailers" in result.stdout and "--precision" in result.stdout
