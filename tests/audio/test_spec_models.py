"""Model specs on soundtracks: hf-audio: (wav2vec 2.0, a Whisper encoder, a 48 kHz extractor) against straight
transformers calls."""

from __future__ import annotations

import numpy as np
import pytest

from m3l.catalog import Item
from m3l.errors import UserError
from m3l.media.audio import Soundtrack, loader_for
from m3l.models import spec
from m3l.models.base import Encoder
from tests.audio.reference import decode_waveform
from tests.audio.media import write_audio
from tests.spec_models import spec_encoder

WAV2VEC2, WHISPER, AT_48K = "facebook/wav2vec2-base-960h", "openai/whisper-large-v3", "example/wav2vec2-48khz"
CONV = dict(conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2)


def _waveforms() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-0.5, 0.5, seconds * 16_000).astype(np.float32) for seconds in (2, 3, 2)]


@pytest.fixture(scope="module")
def spec_store(tmp_path_factory):
    """Tiny random checkpoints saved as the hub serves them (config, preprocessor config, safetensors)."""
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model, WhisperConfig,
                              WhisperFeatureExtractor, WhisperModel)

    store = tmp_path_factory.mktemp("spec-models")
    tiny = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    torch.manual_seed(6)
    Wav2Vec2Model(Wav2Vec2Config(**tiny, **CONV)).eval().save_pretrained(store / WAV2VEC2)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(store / WAV2VEC2)
    WhisperModel(WhisperConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, num_mel_bins=80,
                               vocab_size=99, max_target_positions=32, pad_token_id=0, bos_token_id=1,
                               eos_token_id=2, decoder_start_token_id=1)).eval().save_pretrained(store / WHISPER)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(store / WHISPER)
    Wav2Vec2Model(Wav2Vec2Config(**tiny, **CONV)).eval().save_pretrained(store / AT_48K)
    Wav2Vec2FeatureExtractor(sampling_rate=48_000, return_attention_mask=False).save_pretrained(store / AT_48K)
    return store


@pytest.mark.parametrize("repo_id", [WAV2VEC2, WHISPER])
def test_hf_audio_spec_equals_mean_of_last_hidden_state(spec_store, repo_id):
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    encoder = spec_encoder(spec_store, f"hf-audio:{repo_id}")
    extractor = AutoFeatureExtractor.from_pretrained(spec_store / repo_id)
    model = AutoModel.from_pretrained(spec_store / repo_id).eval()
    network = model.get_encoder() if repo_id == WHISPER else model
    expected = []
    for waveform in _waveforms():  # one at a time: nothing padded
        inputs = extractor(waveform, sampling_rate=16_000, return_tensors="pt")
        with torch.no_grad():
            expected.append(network(**inputs).last_hidden_state[0].mean(0).numpy())
    samples = [sample for waveform in _waveforms() for sample in encoder.preprocess(Soundtrack(waveform))]
    assert encoder.info.dim == 32 and encoder.info.decimals == 6
    np.testing.assert_allclose(encoder.embed(samples), np.stack(expected), atol=1e-4, rtol=0)


def test_an_extractor_at_48_khz_gets_the_soundtrack_resampled_to_48_khz_in_the_same_decode(spec_store, tmp_path):
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    trailer = write_audio(tmp_path / "1.m4a", 2.5)  # 44.1 kHz stereo AAC
    at_48k, at_16k = spec_encoder(spec_store, f"hf-audio:{AT_48K}"), spec_encoder(spec_store, f"hf-audio:{WAV2VEC2}")
    soundtrack = loader_for([at_48k, at_16k])(Item("1", str(trailer)))
    np.testing.assert_array_equal(soundtrack.waveform, decode_waveform(trailer))
    waveform = decode_waveform(trailer, rate=48_000)
    np.testing.assert_array_equal(soundtrack.at(48_000), waveform)
    extractor = AutoFeatureExtractor.from_pretrained(spec_store / AT_48K)
    model = AutoModel.from_pretrained(spec_store / AT_48K).eval()
    with torch.no_grad():
        expected = model(**extractor(waveform, sampling_rate=48_000, return_tensors="pt")).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(at_48k.embed(at_48k.preprocess(soundtrack))[0], expected.numpy(), atol=1e-4, rtol=0)


def test_spec_model_runs_through_extract_audio(spec_store, tmp_path):
    from m3l.cli import main
    from m3l.readers.features import load_features

    trailers = tmp_path / "trailers"
    trailers.mkdir()
    write_audio(trailers / "1.m4a", 2.5)
    write_audio(trailers / "2.m4a", 1.5, seed=1)
    (trailers / "3.mp4").write_bytes(b"not a trailer")
    argv = ["--trailers", trailers, "--models", f"hf-audio:{WAV2VEC2}", "--models-dir", spec_store,
            "--output", tmp_path / "out", "--workers", "0"]
    assert main("audio", [str(arg) for arg in argv]) == 0
    ids, matrix = load_features(tmp_path / "out", f"hf-audio:{WAV2VEC2}", source="parquet")
    assert ids == ["1", "2"] and matrix.shape == (2, 32)
    assert " 3 failed " in (tmp_path / "out" / "log_hf-audio--facebook--wav2vec2-base-960h.txt").read_text()


class PlainEncoder(Encoder):
    """Declares audio but lacks what the audio loader reads (AudioEncoder's sample_rate)."""

    modality, dim = "audio", 4

    def load(self) -> None:
        pass

    def embed(self, samples: list) -> np.ndarray:
        return np.zeros((len(samples), self.dim), np.float32)


def test_an_audio_class_that_is_no_audio_encoder_is_one_error_before_anything_runs():
    with pytest.raises(UserError, match="must subclass m3l.models.audio.AudioEncoder"):
        spec.parse("tests.audio.test_spec_models:PlainEncoder")
