"""Bad trailers: each one gets a clear log line in every model's log, and the run goes on."""

import os
import re

import pytest

from m3l.media import container
from m3l.media.audio import decode_soundtrack
from m3l.models import models_of
from m3l.models.vggish import MIN_PARTIAL_SAMPLES
from tests.audio.helpers import FOLDERS, log_lines
from tests.audio.media import write_audio, write_broken
from tests.outputs import read_vectors
from tests.testlib import DATA, bikes, run_script, write_map

MODELS = tuple(info.name for info in models_of("audio"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("these are not the trailers you are looking for\n" * 50)
    return {
        "missing": folder / "missing.mp4",
        "empty": folder / "empty.mp4",
        "text": folder / "notes.mp4",
        "silentvideo": bikes(),
        "brokenlate": write_broken(folder / "late.m4a", seconds=4.0, broken_from=0.5),
        "brokenearly": write_broken(folder / "early.m4a", seconds=4.0, broken_from=0.1),
        "short": write_audio(folder / "short.wav", seconds=0.5, rate=22050, layout="mono"),
        "silence": write_audio(folder / "silence.flac", seconds=2.0, rate=48000, silent=True),
    }


@pytest.mark.parametrize(("name", "message"), [
    ("missing", r"trailer file not found: .*missing\.mp4"),
    ("empty", r"trailer file is empty \(0 bytes\)"),
    ("text", r"not a readable media file \(Invalid data found when processing input\)"),
    ("silentvideo", r"no audio stream in bikes\.mp4 \(streams: video\)"),
    ("brokenearly", r"audio failed to decode after 0\.\d\d s \(InvalidDataError: "),
])
def test_unusable_trailers_raise_a_one_line_reason(bad_files, name, message):
    with pytest.raises((OSError, ValueError), match=message):
        decode_soundtrack(bad_files[name], min_partial_samples=MIN_PARTIAL_SAMPLES)


@pytest.fixture
def hostile(tmp_path):
    """Trailers that would make FFmpeg read other files: concat scripts naming a FIFO and a real trailer."""
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "fifo", tmp_path / "fifo.mp4")
    os.symlink(tmp_path / "loop.mp4", tmp_path / "loop.mp4")
    for name, target in (("fifo_concat.mp4", tmp_path / "fifo"), ("file_concat.mp4", DATA / "trailers" / "1.mp4")):
        (tmp_path / name).write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    return tmp_path


@pytest.mark.parametrize(("name", "message"), [
    ("fifo_concat.mp4", "not a self-contained media file"),
    ("file_concat.mp4", "not a self-contained media file"),
    ("fifo.mp4", r"trailer file is a FIFO \(named pipe\), not a regular file"),
    ("loop.mp4", "trailer file is a symbolic link loop"),
    (".", "trailer file is a directory"),
    ("/dev/zero", "trailer file is a character device, not a regular file"),
    ("/proc/self/status", "virtual file systems"),
])
def test_media_never_reach_beyond_their_own_regular_file(hostile, name, message):
    with pytest.raises(ValueError, match=message):
        decode_soundtrack(hostile / name)  # returns at once: nothing blocks on the FIFO


def test_a_decode_that_takes_too_long_is_stopped(monkeypatch):
    monkeypatch.setattr(container, "DECODE_TIMEOUT", 0)
    with pytest.raises(TimeoutError, match="decoding took longer than 0 s"):
        decode_soundtrack(DATA / "trailers" / "1.mp4")


def test_a_stream_broken_part_way_keeps_what_decoded_when_it_is_one_vggish_example_long(bad_files):
    soundtrack = decode_soundtrack(bad_files["brokenlate"], min_partial_samples=MIN_PARTIAL_SAMPLES)
    assert len(soundtrack.waveform) >= 15600  # one complete VGGish example
    assert soundtrack.warnings and soundtrack.warnings[0].startswith("audio failed to decode after")


def test_short_and_silent_soundtracks_are_kept_with_a_warning(bad_files):
    short, silence = decode_soundtrack(bad_files["short"]), decode_soundtrack(bad_files["silence"])
    assert 7900 < len(short.waveform) < 8100 and short.warnings == ("audio is only 0.50 s long",)
    assert not silence.waveform.any() and silence.warnings == ("audio is silent (all samples are zero)",)


@pytest.fixture(scope="module")
def bad_run(audio_store, bad_files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("badrun")
    rows = [("1", DATA / "trailers" / "1.mp4"), *bad_files.items(), ("1", DATA / "trailers" / "2.mp4"),
            ("../evil", DATA / "trailers" / "3.mp4"), ("12.5", DATA / "trailers" / "3.mp4"), ("nopath", "")]
    tsv = write_map(folder / "trailers.tsv", rows)
    output = folder / "out"
    result = run_script("extract_audio.py", "--trailers", tsv, "--models-dir", audio_store, "--output", output,
                        "--batch-size", "3", "--workers", "2")
    return result, output


def test_a_run_over_bad_trailers_finishes_and_logs_each_one(bad_run):
    result, output = bad_run
    assert result.returncode == 0, result.stderr
    for model in MODELS:
        lines = log_lines(output, model)
        expected = [
            r"missing failed trailer file not found",
            r"empty failed trailer file is empty \(0 bytes\)",
            r"text failed not a readable media file",
            r"silentvideo failed no audio stream in bikes\.mp4",
            r"brokenearly failed audio failed to decode after 0\.\d\d s",
            r"brokenlate warning audio failed to decode after \d\.\d\d s, the decoded part is used",
            r"short warning audio is only 0\.50 s long",
            r"silence warning audio is silent",
            r"1 skipped duplicate id \(first one kept\)",
            r"\.\./evil skipped invalid id",
            r"12\.5 skipped invalid id",
            r"nopath skipped row without a file path",
        ]
        for pattern in expected:
            assert any(re.match(f"audio_\\w+ {pattern}", line) for line in lines), (model, pattern, lines)
        assert len(lines) == len(expected), lines
        assert sorted(read_vectors(output / FOLDERS[model])) == ["1", "brokenlate", "short", "silence"]
        assert f"4 done, 0 already done, 5 failed, 4 skipped" in result.stdout


def test_short_audio_without_a_complete_vggish_example_gives_zeros(bad_run):
    _, output = bad_run
    assert not read_vectors(output / FOLDERS["vggish"])["short"].any()
    assert read_vectors(output / FOLDERS["whisper"])["short"].any()
    assert read_vectors(output / FOLDERS["ast"])["short"].any()
