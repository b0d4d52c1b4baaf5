"""The project's VGGish against torchvggish's reference code (tests/audio/reference.py), part by part."""

import numpy as np
import pytest
import torch

from m3l.media.audio import Soundtrack
from m3l.models import MODELS
from m3l.models.vggish import VGGishEncoder, load_pca, log_mel_examples
from tests.audio import reference
from tests.audio.stores import VGGISH, VGGISH_PCA
from tests.audio.media import music


@pytest.fixture(scope="module")
def encoder(audio_store):
    loaded = VGGishEncoder(MODELS["vggish"], [audio_store / VGGISH, audio_store / VGGISH_PCA])
    loaded.load()
    return loaded


@pytest.mark.parametrize("samples", [400, 15599, 15600, 16000, 47999, 160_000, 480_000])
def test_log_mel_examples_equal_torchvggish_waveform_to_examples(samples):
    waveform = music(samples / 16000 + 0.01, 16000, 1, seed=samples)[0][:samples]
    ours = log_mel_examples(waveform)
    expected = reference.waveform_to_examples(waveform, 16000)[:, 0].numpy()
    assert ours.shape == expected.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


def test_fewer_samples_than_one_example_give_no_examples():
    assert log_mel_examples(np.ones(399, np.float32)).shape == (0, 96, 64)
    assert log_mel_examples(np.ones(15599, np.float32)).shape == (0, 96, 64)


def test_the_published_pca_file_loads_and_postprocesses_as_torchvggish(audio_store):
    pca = audio_store / VGGISH_PCA
    assert b"numpy.core.multiarray" in pca.read_bytes()  # the fixture is in the numpy-1 form of the real file
    _, expected = reference.load_vggish(audio_store / VGGISH, pca)
    embeddings = torch.rand(50, 128) * 4
    np.testing.assert_array_equal(load_pca(pca)(embeddings).numpy(), expected(embeddings).numpy())


def test_per_trailer_vectors_equal_torchvggish_in_one_mixed_batch(audio_store, encoder):
    """Trailers with many, one and no complete examples batched together; each equals its own reference."""
    waveforms = [music(3.5, 16000, 1, seed=1)[0], music(1.2, 16000, 1, seed=2)[0], music(0.5, 16000, 1, seed=3)[0]]
    vectors = encoder.embed([encoder.preprocess(Soundtrack(w))[0] for w in waveforms])
    codes = [reference.vggish_codes(audio_store / VGGISH, audio_store / VGGISH_PCA, w) for w in waveforms[:2]]
    assert len(codes[0]) == 3 and len(codes[1]) == 1
    np.testing.assert_allclose(vectors[0], codes[0].mean(dim=0).numpy(), atol=1e-4)
    np.testing.assert_array_equal(vectors[1], codes[1][0].numpy())  # one example: its 128 values
    assert len(np.unique(vectors[1])) > 10 and np.all(vectors[1] == np.round(vectors[1]))
    np.testing.assert_array_equal(vectors[2], np.zeros(128, np.float32))  # no complete example


def test_a_batch_without_any_example_gives_zeros(encoder):
    silence = [log_mel_examples(np.zeros(1000, np.float32))] * 2
    np.testing.assert_array_equal(encoder.embed(silence), np.zeros((2, 128), np.float32))
