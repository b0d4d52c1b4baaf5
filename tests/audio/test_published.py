"""Extending the published M3L audio features (`features_json_format/4_audio_feat/whisper/`, no provenance
record) under the published layout: refused until adopted, then the published files stay as they were."""

import numpy as np

from m3l import load_features, provenance
from tests.published import TOP, write_published
from tests.testlib import run_script

TRAILERS = {"10": "lame.mp3", "11": "surround.flac", "12": "opus.mkv"}


def snapshot(folder):
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}


def test_a_published_whisper_folder_is_adopted_then_extended_and_a_second_run_does_nothing(
        audio_store, sounds, tmp_path):
    trailers = tmp_path / "trailers"
    trailers.mkdir()
    for movie_id, name in TRAILERS.items():
        (trailers / f"{movie_id}{sounds[name].suffix}").write_bytes(sounds[name].read_bytes())
    rng = np.random.default_rng(7)
    published = write_published(tmp_path / TOP, "whisper",
                                {i: rng.standard_normal(512).astype(np.float32) for i in ("10", "11")})
    before = snapshot(published)
    command = ("--trailers", trailers, "--models-dir", audio_store, "--models", "whisper",
               "--output", tmp_path / TOP / "4_audio_feat")  # recognised as the published layout by its name

    refused = run_script("extract_audio.py", *command)
    [error] = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert refused.returncode == 2 and "no provenance record" in error and "--adopt-as" in error
    assert snapshot(published) == before

    adopted = run_script("extract_audio.py", *command, "--adopt-as", "m3l-published")
    assert adopted.returncode == 0, adopted.stderr
    assert "1 done, 2 already done, 0 failed" in adopted.stdout
    assert {name: snapshot(published)[name] for name in before} == before
    assert (published / "12.json").is_file() and not (tmp_path / TOP / "4_audio_feat" / "audio_whisper").exists()
    for source in ("hdf5", "parquet"):
        assert load_features(tmp_path / TOP, "whisper", source=source)[0] == ["10", "11", "12"]
    summary = provenance(tmp_path / TOP / "4_audio_feat", "whisper")
    assert summary["adopted"] == {"label": "m3l-published", "ids": ["10", "11"]}
    assert summary["provenance"]["model"] == "whisper" and summary["others"] == []

    after = snapshot(published)
    again = run_script("extract_audio.py", *command, "--adopt-as", "m3l-published")
    assert again.returncode == 0, again.stderr
    assert "0 done, 3 already done" in again.stdout and snapshot(published) == after


def test_layout_m3l_writes_the_published_folder_names(audio_store, sounds, tmp_path):
    trailers = tmp_path / "trailers"
    trailers.mkdir()
    (trailers / f"1{sounds['lame.mp3'].suffix}").write_bytes(sounds["lame.mp3"].read_bytes())
    result = run_script("extract_audio.py", "--trailers", trailers, "--models-dir", audio_store, "--models", "whisper",
                        "--output", tmp_path / "mine", "--layout", "m3l")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mine" / "4_audio_feat" / "whisper" / "1.json").is_file()
    assert load_features(tmp_path / "mine", "whisper", layout="m3l")[0] == ["1"]
