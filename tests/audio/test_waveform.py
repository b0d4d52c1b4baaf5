"""The shared waveform: FFmpeg's own down-mix and resampling, the first 30 s, decoded once."""

import io
import pickle

import numpy as np
import pytest

from m3l.catalog import Item
from m3l.media.audio import MAX_SAMPLES, _decode, decode_soundtrack, loader_for
from tests.audio.reference import decode_waveform
from tests.audio.media import write_audio
from tests.testlib import DATA, bigbuckbunny, bikes


@pytest.mark.parametrize("name", ["opus.mkv", "vorbis.webm", "lame.mp3", "long8k.wav", "surround.flac"])
def test_generated_codecs_and_layouts_match_an_independent_pyav_decode(sounds, name):
    soundtrack = decode_soundtrack(sounds[name])
    expected = decode_waveform(sounds[name])
    assert soundtrack.waveform.dtype == np.float32 and soundtrack.waveform.ndim == 1
    np.testing.assert_array_equal(soundtrack.waveform, expected)
    assert soundtrack.warnings == ()


@pytest.mark.parametrize("path", [bigbuckbunny(), DATA / "trailers" / "1.mp4"], ids=["bigbuckbunny-aac-5.1-48k",
                                                                                     "sample-aac-stereo-44k"])
def test_real_trailers_match_an_independent_pyav_decode(path):
    waveform = decode_soundtrack(path).waveform
    np.testing.assert_array_equal(waveform, decode_waveform(path))
    assert 4.5 * 16000 < len(waveform) < 5.5 * 16000  # 5.3 s and 5.3 s at 16 kHz


def test_a_long_soundtrack_is_cut_to_exactly_thirty_seconds(sounds):
    assert len(decode_soundtrack(sounds["long8k.wav"]).waveform) == MAX_SAMPLES


class CountingReader(io.FileIO):
    """A file that remembers how many bytes were read from it."""

    bytes_read = 0

    def readinto(self, buffer):
        count = super().readinto(buffer)
        self.bytes_read += count or 0
        return count


def test_decoding_stops_after_thirty_seconds_without_reading_the_rest(tmp_path):
    import av

    path = write_audio(tmp_path / "minute.flac", seconds=60.0, rate=16000, layout="mono")
    with CountingReader(path) as reader, av.open(reader) as container:
        chunks, collected, error = _decode(container, {16000: MAX_SAMPLES})
        fraction_read = reader.bytes_read / path.stat().st_size
    assert error is None and collected[16000] >= MAX_SAMPLES
    assert fraction_read < 0.7


def test_a_video_without_audio_says_so():
    with pytest.raises(ValueError, match=r"no audio stream in bikes.mp4 \(streams: video\)"):
        decode_soundtrack(bikes())


def test_the_loader_is_picklable_for_worker_processes():
    loader = pickle.loads(pickle.dumps(loader_for([], None)))
    waveform = loader(Item("1", str(DATA / "trailers" / "1.mp4"))).waveform
    np.testing.assert_array_equal(waveform, decode_waveform(DATA / "trailers" / "1.mp4"))
